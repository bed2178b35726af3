"""db/inserts.py: jobs written in one statement, a unique_key already active keeping out its twin."""

from __future__ import annotations

from typing import Any

import pytest

from django_jobs.db.inserts import insert_jobs
from django_jobs.models import Job

pytestmark = pytest.mark.django_db

NAME = "tests.testapp.jobs.record"


def test_insert_jobs__sets_the_ids_of_the_jobs_it_wrote() -> None:
    batch = [Job(name=NAME, args=["a"]), Job(name=NAME, args=["b"])]

    assert insert_jobs(batch, "default") == [True, True]

    assert [Job.objects.get(pk=job.pk).args for job in batch] == [["a"], ["b"]]


def test_insert_jobs__a_unique_key_is_written_once_while_its_job_is_active() -> None:
    first = Job(name=NAME, unique_key="k")
    assert insert_jobs([first], "default") == [True]

    batch = [Job(name=NAME, unique_key="k"), Job(name=NAME, unique_key="other"), Job(name=NAME, unique_key="other")]
    assert insert_jobs(batch, "default") == [False, True, False]

    assert batch[0].pk is None and batch[2].pk is None
    assert sorted(Job.objects.values_list("unique_key", flat=True)) == ["k", "other"]


def test_run_prepared__parses_a_long_statement_s_placeholders_once(monkeypatch: Any) -> None:
    # psycopg caches that parsing only for texts up to MAX_CACHED_STATEMENT_LENGTH; the worker's
    # round trip is longer, and was parsed again on every run (django_jobs/db/connection.py).
    from psycopg import _queries

    from django_jobs.db.connection import run_prepared

    parsed: list[bytes] = []
    real = _queries._query2pg_nocache

    def counting(query: bytes, encoding: str) -> Any:
        parsed.append(query)
        return real(query, encoding)

    monkeypatch.setattr(_queries, "_query2pg_nocache", counting)
    padding = " ".join(f"%(p{n})s::int AS c{n}," for n in range(3))
    sql = f"SELECT {padding} %(last)s::text AS last /* {'x' * _queries.MAX_CACHED_STATEMENT_LENGTH} */"
    assert len(sql) > _queries.MAX_CACHED_STATEMENT_LENGTH

    rows = [run_prepared("default", sql, {"p0": n, "p1": 1, "p2": 2, "last": "ok"}) for n in range(3)]

    assert rows == [[(0, 1, 2, "ok")], [(1, 1, 2, "ok")], [(2, 1, 2, "ok")]]
    assert len(parsed) == 1
