"""using(after=[...]) is checked before anything is written: its values, its size, the options it
can't go with, and the database it needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connections
from django.test import override_settings

from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import ACTIVE_STATUSES, FINISHED_STATUSES, READY_STATUSES, Job, JobStatus
from django_jobs.registry import MAX_UPSTREAM
from tests.testapp import jobs


def saved(job_id: int, db: str = "default") -> Job:
    job = Job(id=job_id, name=jobs.step.name)
    job._state.adding, job._state.db = False, db
    return job


def test_using_after__takes_rows_and_ids_once_each_in_order() -> None:
    definition = jobs.step.using(after=[saved(3), 5, saved(3), 7])

    assert definition.options.after == ((3, "default"), (5, None), (7, None))


@pytest.mark.parametrize(
    ("after", "message"),
    [
        ("12", "a list of jobs"),
        (12, "a list of jobs"),
        ([True], "neither"),
        ([1.5], "neither"),
        ([Job(name="x")], "neither"),  # unsaved: no id
        ([0], "the id 0, which no job has"),
    ],
    ids=["a-string", "an-int", "a-bool", "a-float", "an-unsaved-row", "zero"],
)
def test_using_after__refuses_what_isnt_jobs_or_ids(after: object, message: str) -> None:
    with pytest.raises(InvalidJobOptions, match=message):
        jobs.step.using(after=after)


def test_using_after__refuses_more_than_ten_thousand_upstream_jobs() -> None:
    with pytest.raises(InvalidJobOptions, match=f"at most {MAX_UPSTREAM:,}".replace(",", "")):
        jobs.step.using(after=range(1, MAX_UPSTREAM + 2))
    assert len(jobs.step.using(after=range(1, MAX_UPSTREAM + 1)).options.after or ()) == MAX_UPSTREAM


def test_using_after__refuses_unique_key_either_way_round() -> None:
    with pytest.raises(InvalidJobOptions, match="unique_key"):
        jobs.step.using(unique_key="k").using(after=[1])


def test_waiting__is_neither_ready_active_nor_finished() -> None:
    # So the claim's index (READY_STATUSES), unique keys and pruning never take a waiting job.
    assert JobStatus.WAITING not in (*READY_STATUSES, *ACTIVE_STATUSES, *FINISHED_STATUSES)


@pytest.fixture
def sqlite_jobs_database() -> Iterator[str]:
    connections.settings["sqlite_demo"] = {
        "NAME": ":memory:", "ENGINE": "django.db.backends.sqlite3", "OPTIONS": {}, "TIME_ZONE": None,
        "CONN_HEALTH_CHECKS": False, "CONN_MAX_AGE": 0, "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False,
        "TEST": {},
    }
    try:
        with override_settings(DJANGO_JOBS={"DATABASE": "sqlite_demo"}):
            yield "sqlite_demo"
    finally:
        connections.settings.pop("sqlite_demo")
        if hasattr(connections._connections, "sqlite_demo"):
            delattr(connections._connections, "sqlite_demo")


def test_enqueue_after__on_sqlite_says_it_needs_postgresql(sqlite_jobs_database: str) -> None:
    with pytest.raises(InvalidJobOptions, match=r"need\s+PostgreSQL.*'sqlite_demo' is sqlite"):
        jobs.step.using(after=[1]).enqueue("x")
