"""``async def`` jobs in a real worker: run on an event loop in the child, with the same
timeouts, retries, stops and context as sync jobs (jobs in tests/testapp/jobs.py)."""

from __future__ import annotations

import json

import pytest

from django_jobs.models import Job, JobStatus
from tests.support.procs import WorkerProcess, wait_until
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

FAST = {"HEARTBEAT_INTERVAL": 0.2, "RESCUE_AFTER": 2.0, "STOP_GRACE": 5.0, "POLL_INTERVAL": 0.1}


@pytest.fixture
def worker(worker_process):
    """One runjobs subprocess with fast heartbeats, started on first use."""

    def start() -> WorkerProcess:
        return worker_process("--concurrency", "2", env={"DJANGO_JOBS_TEST_SETTINGS": json.dumps(FAST)})

    return start


def finished(job: Job, worker: WorkerProcess, timeout: float = 30) -> Job:
    wait_until(
        lambda: Job.objects.filter(pk=job.pk, status__in=[JobStatus.SUCCEEDED, JobStatus.STOPPED, JobStatus.DEAD]).exists(),
        timeout=timeout, message=lambda: f"job {job.pk} to finish; {worker.describe()}",
    )
    job.refresh_from_db()
    return job


def attempts_run(job: Job) -> list[int]:
    """The attempts whose body ran, as the job itself recorded them (from current_job())."""
    return list(SideEffect.objects.filter(job_id=job.pk).order_by("id").values_list("attempt", flat=True))


def test_async_job__awaiting_past_its_timeout_is_killed_and_retried_like_a_sync_one(worker):
    # Both: timeout=0.5, max_attempts=2. The async one awaits asyncio.sleep(3600).
    sync, async_ = jobs.sleep_forever.enqueue(), jobs.async_sleep_forever.enqueue()
    running = worker()

    rows = [finished(job, running) for job in (sync, async_)]

    for row in rows:
        assert (row.status, row.attempts) == (JobStatus.DEAD, 2), row.history
        assert [e["outcome"] for e in row.history] == ["timeout", "timeout"]
        assert row.history[-1]["error"]["class"] == "django_jobs.exceptions.JobTimeout"
        assert attempts_run(row) == [1, 2]
    assert "ran past its 0.5s timeout" in rows[1].history[0]["error"]["message"]


def test_async_job__raising_retry_runs_again_and_its_result_is_stored(worker):
    job = jobs.async_snooze_once.enqueue(0.2)
    running = worker()

    row = finished(job, running)

    assert row.status == JobStatus.SUCCEEDED, row.history
    assert row.result == f"woke in attempt 2 of job {job.pk}"  # current_job() inside the coroutine
    assert [e["outcome"] for e in row.history] == ["retry", "succeeded"]
    assert attempts_run(row) == [1, 2]


def test_async_job__raising_stop_job_ends_it_stopped_with_its_reason(worker):
    job = jobs.async_stop_self.enqueue("nothing left to do")
    running = worker()

    row = finished(job, running)

    assert (row.status, row.last_error) == (JobStatus.STOPPED, "nothing left to do")
    assert [e["outcome"] for e in row.history] == ["stopped"]


def test_async_job__sees_a_stop_request_and_reports_progress_through_the_async_context(worker):
    job = jobs.async_cooperative_loop.enqueue()
    running = worker()
    wait_until(
        lambda: Job.objects.filter(pk=job.pk, progress__percent=10).exists(),
        timeout=30, message=lambda: f"the job's progress; {running.describe()}",
    )

    assert job.stop() is True
    row = finished(job, running, timeout=15)

    # It returned on its own, well within the 5 s stop grace: it wasn't killed.
    assert (row.status, row.result) == (JobStatus.STOPPED, "noticed the stop request")
    assert row.progress["message"] == "waiting"


def test_async_job__calling_the_orm_from_the_event_loop_fails_with_djangos_error(worker):
    job = jobs.async_orm_without_sync_to_async.enqueue()
    running = worker()

    row = finished(job, running)

    assert row.status == JobStatus.DEAD
    assert row.history[-1]["error"]["class"] == "django.core.exceptions.SynchronousOnlyOperation"
    assert "sync_to_async" in row.history[-1]["error"]["message"]
