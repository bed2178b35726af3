"""Four real ``runjobs`` processes drain one queue together: every job runs exactly once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db.models import Count

from django_jobs.models import Job, JobStatus
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

JOBS = 2000
WORKERS = 4


def test_drain__four_workers_run_every_job_exactly_once(worker_process: Any) -> None:
    created = jobs.record.enqueue_many([[f"job {i}"] for i in range(JOBS)])
    expected = {job.pk for job in created}
    assert len(expected) == JOBS

    started = time.monotonic()
    workers = [
        worker_process("--burst", "--concurrency", "2", "--no-scheduler", "--worker-id", f"drain-{n}")
        for n in range(WORKERS)
    ]
    codes = [worker.wait(timeout=120) for worker in workers]
    elapsed = time.monotonic() - started

    assert codes == [0] * WORKERS, "\n\n".join(w.describe() for w in workers)
    # What the job bodies wrote, not what the workers say: one side effect per job, no more.
    runs = dict(SideEffect.objects.values("job_id").annotate(n=Count("id")).values_list("job_id", "n"))
    assert set(runs) == expected, f"{len(expected - set(runs))} jobs never ran"
    repeated = {job_id: n for job_id, n in runs.items() if n != 1}
    assert repeated == {}, f"jobs that ran more than once: {repeated}"
    assert set(SideEffect.objects.values_list("label", flat=True)) == {f"job {i}" for i in range(JOBS)}
    assert Job.objects.exclude(status=JobStatus.SUCCEEDED).count() == 0
    # The work was shared: more than one process claimed jobs.
    by_worker = dict(
        Job.objects.values("history__0__worker").annotate(n=Count("id")).values_list("history__0__worker", "n")
    )
    assert len(by_worker) > 1, by_worker
    print(f"{JOBS} jobs drained by {WORKERS} workers in {elapsed:.1f}s: {by_worker}")
