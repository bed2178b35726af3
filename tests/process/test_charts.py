"""The charts' buckets recorded by real workers: two ``runjobs`` processes, each running the tally
service, record every minute once between them. Takes a minute or two: a minute must end, settle
and be picked up by a tally before it is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Sum

from django_jobs.models import Job, JobStatus, Sample
from tests.support.procs import wait_until
from tests.testapp import jobs

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

JOBS = 12


def recorded_successes() -> int:
    """Successes in the all-queues minute rows: each job counted once if each minute is."""
    return int(Sample.objects.filter(span=60, queue="", name="").aggregate(n=Sum("succeeded"))["n"] or 0)


def test_two_workers__record_each_minute_once_between_them(worker_process: Any) -> None:
    workers = [worker_process("--concurrency", "1", "--no-scheduler") for _ in range(2)]
    for worker in workers:
        worker.wait_for_output("event=worker_started", timeout=30)
    for n in range(JOBS):
        jobs.record.enqueue(f"chart {n}")
    wait_until(lambda: Job.objects.filter(status=JobStatus.SUCCEEDED).count() == JOBS, timeout=60,
               message=lambda: workers[0].describe())
    last = Job.objects.order_by("-finished_at").values_list("finished_at", flat=True).first()
    assert last is not None

    # Recorded by the time a tally has run past the last job's minute plus SETTLE.
    wait_until(lambda: Sample.objects.filter(span=60, queue="", name="",
                                             bucket__gte=last.replace(second=0, microsecond=0)).exists(),
               timeout=150, interval=1.0, message=lambda: workers[0].describe())

    assert recorded_successes() == JOBS  # not twice: one worker recorded each minute
    per_name = Sample.objects.filter(span=60, name="tests.testapp.jobs.record")
    assert per_name.aggregate(n=Sum("succeeded"))["n"] == JOBS
    assert all(s.p50 is not None and s.p95 is not None for s in per_name)
