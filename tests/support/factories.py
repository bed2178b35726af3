"""factory-boy factories for the job tables."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.db import connection
from django.utils import timezone

from django_jobs.db import stats as db_stats
from django_jobs.models import Job, JobStatus


class JobFactory(factory.django.DjangoModelFactory):
    """A ready ``tests.testapp.jobs.record`` job, written with the ORM (not via enqueue)."""

    class Meta:
        model = Job

    name = "tests.testapp.jobs.record"
    args = factory.List([])
    kwargs = factory.Dict({})
    queue = "default"
    priority = 0
    status = JobStatus.QUEUED
    max_attempts = 3
    run_at = factory.LazyFunction(timezone.now)
    created_at = factory.LazyFunction(timezone.now)

    class Params:
        # JobFactory(finished=True): a succeeded job with its finish time set.
        finished = factory.Trait(
            status=JobStatus.SUCCEEDED,
            attempts=1,
            finished_at=factory.LazyFunction(timezone.now),
        )


def fill(total: int, *, now: str = "now()") -> None:
    """Write ``total`` jobs shaped like a busy production table: nearly all finished, spread
    over a week of retention, a thin layer of waiting and running ones on top."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {db_stats.TABLE} (name, args, kwargs, queue, priority, status, "
            "attempts, max_attempts, run_at, created_at, started_at, finished_at, worker_id, "
            "history, last_error) "
            "SELECT 'shop.job' || (i %% 20), '[]', '{}', "
            "(ARRAY['default', 'emails', 'reports'])[1 + i %% 3], 0, s.status, 1, 3, r.at, r.at, "
            "CASE WHEN s.status IN ('succeeded', 'dead', 'stopped', 'running') THEN r.at END, "
            "CASE WHEN s.status IN ('succeeded', 'dead', 'stopped') THEN r.at END, "
            "CASE WHEN s.status = 'running' THEN 'host:' || (i %% 4) ELSE '' END, '[]', '' "
            "FROM generate_series(1, %s) AS i, "
            "LATERAL (SELECT CASE WHEN i %% 1000 < 5 THEN 'queued' "
            "WHEN i %% 1000 < 7 THEN 'retrying' "
            "WHEN i %% 1000 < 8 THEN 'running' WHEN i %% 1000 < 20 THEN 'dead' "
            "WHEN i %% 1000 < 22 THEN 'stopped' ELSE 'succeeded' END AS status) AS s, "
            f"LATERAL (SELECT {now} - (i %% 10080) * interval '1 minute' AS at) AS r",
            [total],
        )
        cursor.execute(f"ANALYZE {db_stats.TABLE}")


def bulk_finished(count: int, status: str, age: timedelta) -> None:
    """Insert ``count`` jobs of ``status`` that finished ``age`` ago, in one statement."""
    finished = timezone.now() - age
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_jobs_job (name, args, kwargs, queue, priority, status, attempts, "
            "max_attempts, run_at, created_at, finished_at, worker_id, history, last_error) "
            "SELECT 'tests.testapp.jobs.noop', '[]', '{}', 'default', 0, %s, 1, 3, %s, %s, %s, '', "
            "'[]', '' FROM generate_series(1, %s)",
            [status, finished, finished, finished, count],
        )
