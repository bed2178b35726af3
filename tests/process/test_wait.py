"""``Job.wait()`` against real ``runjobs`` processes: woken by the outcome's announcement, or by
polling without LISTEN/NOTIFY."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from django_jobs.models import Job, JobStatus
from tests.support.procs import WorkerProcess, wait_until
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

FAST = {"HEARTBEAT_INTERVAL": 0.2, "RESCUE_AFTER": 2.0, "STOP_GRACE": 1.0, "POLL_INTERVAL": 0.1}


@pytest.fixture
def worker(worker_process):
    def start(**settings: object) -> WorkerProcess:
        tuned = json.dumps({**FAST, **settings})
        return worker_process("--concurrency", "2", env={"DJANGO_JOBS_TEST_SETTINGS": tuned})

    return start


def started(job: Job, worker: WorkerProcess) -> None:
    wait_until(
        lambda: SideEffect.objects.filter(job_id=job.pk).exists(),
        timeout=30, message=lambda: f"job {job.pk} to start; {worker.describe()}",
    )


def test_wait__returns_the_job_refreshed_once_a_worker_has_run_it(worker):
    job = jobs.add.enqueue(2, 3)
    worker()

    done = job.wait(timeout=60)

    assert done is job
    assert (done.status, done.result, done.attempts) == (JobStatus.SUCCEEDED, 5, 1)
    assert done.history[-1]["outcome"] == "succeeded"


def test_wait__is_woken_by_the_outcomes_announcement_not_by_a_poll(worker):
    job = jobs.sleep_for.enqueue(0.5)
    running = worker()
    started(job, running)  # so wait() finds it running, and only an announcement can end it

    # A poll would look again only after 600 s, past the timeout: the announcement must wake it.
    with override_settings(DJANGO_JOBS={"POLL_INTERVAL": 600.0}):
        done = job.wait(timeout=60)

    assert (done.status, done.result) == (JobStatus.SUCCEEDED, "slept")


def test_wait__polls_without_listen_notify(worker):
    job = jobs.sleep_for.enqueue(0.5)
    running = worker(LISTEN_NOTIFY=False)
    started(job, running)

    with override_settings(DJANGO_JOBS={"LISTEN_NOTIFY": False, "POLL_INTERVAL": 0.1}):
        done = job.wait(timeout=60)

    assert (done.status, done.result) == (JobStatus.SUCCEEDED, "slept")


def test_wait__returns_a_dead_job_too(worker):
    job = jobs.fail_fatally.enqueue()
    worker()

    done = job.wait(timeout=60)

    assert done.status == JobStatus.DEAD
    assert done.history[-1]["error"]["class"] == "builtins.KeyError"


def test_wait__times_out_while_the_job_runs(worker):
    job = jobs.sleep_for.enqueue(30.0)
    running = worker()
    started(job, running)

    with pytest.raises(TimeoutError, match=rf"Job #{job.pk} \(tests\.testapp\.jobs\.sleep_for\) hasn't finished within 0\.3s: it is running"):
        job.wait(timeout=0.3)
    job.stop()
