"""db/tables.py: the status predicates every statement shares, spelled once (no database)."""

from __future__ import annotations

from django_jobs.db import tables
from django_jobs.models import ACTIVE_STATUSES, READY_STATUSES, JobStatus


def test_status_in__literals_in_the_order_given() -> None:
    assert tables.status_in([JobStatus.DEAD, JobStatus.QUEUED]) == "status IN ('dead', 'queued')"


def test_status_is__one_literal() -> None:
    assert tables.status_is(JobStatus.RUNNING) == "status = 'running'"


def test_predicates__match_the_model_s_status_groups() -> None:
    assert tables.READY_SQL == "status IN ('queued', 'retrying')"
    assert tables.ACTIVE_SQL == tables.status_in(ACTIVE_STATUSES)
    assert tables.READY_SQL == tables.status_in(READY_STATUSES)


def test_key_holders_sql__spells_each_unique_key_index_s_predicate_as_django_writes_it() -> None:
    # SQLite matches an ON CONFLICT target to a partial index only by an identical WHERE, so the
    # text must be the one Django's migration wrote for the constraint (quotes and outer
    # parentheses aside, which SQLite's parser drops). Compiled for SQLite without connecting.
    from django.db.backends.sqlite3.base import DatabaseWrapper

    from django_jobs.models import Job, UniqueWhile

    sqlite = DatabaseWrapper({
        "NAME": ":memory:", "ENGINE": "django.db.backends.sqlite3", "OPTIONS": {}, "TIME_ZONE": None,
        "CONN_HEALTH_CHECKS": False, "CONN_MAX_AGE": 0, "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False, "TEST": {},
    })
    editor = sqlite.schema_editor(collect_sql=True)
    constraints = {c.name: c for c in Job._meta.constraints}
    for scope in UniqueWhile.values:
        written = constraints[f"django_jobs_unique_key_{scope}"]._get_condition_sql(Job, editor)
        assert written.replace('"', "").removeprefix("(").removesuffix(")") == tables.KEY_HOLDERS_SQL[scope]
        assert tables.unique_target(scope) == f"(unique_key) WHERE {tables.KEY_HOLDERS_SQL[scope]}"
