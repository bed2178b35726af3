"""A crash spends only the attempts that really ran: real workers killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal

import pytest

from django_jobs.lifecycle import NEVER_STARTED
from django_jobs.models import Job, JobStatus, Worker
from tests.support.procs import WorkerProcess, wait_until
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

FAST = {"HEARTBEAT_INTERVAL": 0.2, "RESCUE_AFTER": 2.0, "STOP_GRACE": 1.0, "POLL_INTERVAL": 0.1}
CHILDREN = 2


@pytest.fixture
def workers(worker_process):
    """Start runjobs subprocesses with fast heartbeats and a short rescue window."""

    def start(*args: str, settings: dict | None = None) -> WorkerProcess:
        return worker_process(*args, env={"DJANGO_JOBS_TEST_SETTINGS": json.dumps({**FAST, **(settings or {})})})

    return start


def runs_per_job() -> dict[int, int]:
    runs: dict[int, int] = {}
    for job_id in SideEffect.objects.values_list("job_id", flat=True):
        runs[job_id] = runs.get(job_id, 0) + 1
    return runs


def test_kill9__max_attempts_1_jobs_run_at_most_once_and_no_more_die_than_there_were_children(workers):
    created = jobs.record_once.enqueue_many([[f"j{i}"] for i in range(500)])
    doomed = workers("--concurrency", str(CHILDREN), "--worker-id", "elsewhere:doomed", "--no-scheduler")
    wait_until(lambda: SideEffect.objects.count() >= 100, timeout=60, message=lambda: f"100 jobs to run; {doomed.describe()}")
    os.kill(doomed.pid, signal.SIGKILL)  # the main process only: its children die with it
    doomed.wait()
    held = set(Job.objects.filter(status=JobStatus.RUNNING).values_list("id", flat=True))

    survivor = workers("--concurrency", str(CHILDREN), "--worker-id", "survivor", "--no-scheduler")
    wait_until(
        lambda: not Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.RUNNING]).exists(),
        timeout=120, message=lambda: f"every job to end; {survivor.describe()}",
    )

    assert held  # the kill caught jobs claimed ahead
    runs = runs_per_job()
    dead, given_back = [], []
    for job in Job.objects.filter(pk__in=[j.pk for j in created]):
        outcomes = [entry["outcome"] for entry in job.history]
        if job.status == JobStatus.SUCCEEDED:
            assert runs.get(job.pk) == 1, (job.pk, runs.get(job.pk), outcomes)
            assert set(outcomes[:-1]) <= {"handed_back"}, (job.pk, outcomes)
        else:
            assert (job.status, outcomes) == (JobStatus.DEAD, ["lost"]), (job.pk, job.status, outcomes)
            assert runs.get(job.pk, 0) <= 1 and job.pk in held
            assert "at most once" in job.history[-1]["reason"]
            dead.append(job.pk)
        if "handed_back" in outcomes:
            assert job.history[0]["reason"] == NEVER_STARTED and job.pk in held
            given_back.append(job.pk)
    assert len(dead) <= CHILDREN, dead
    assert sorted(dead + given_back) == sorted(held)  # every held job: dead or given back unspent


def test_poison_pill__a_job_that_kills_its_worker_ends_dead_after_max_lost_losses(workers):
    job = jobs.kill_own_worker.enqueue()  # max_attempts=10: MAX_LOST (3) decides, not attempts
    # Default host:pid worker ids: each new worker rescues its killed predecessor as it starts.
    started: list[WorkerProcess] = []

    def killed_or_dead() -> bool:
        return started[-1].proc.poll() is not None or Job.objects.get(pk=job.pk).status == JobStatus.DEAD

    while len(started) < 5 and Job.objects.get(pk=job.pk).status != JobStatus.DEAD:
        started.append(workers("--concurrency", "1", "--no-scheduler"))
        wait_until(killed_or_dead, timeout=30,
                   message=lambda: f"the job to kill its worker; {started[-1].describe()}")
    started[-1].stop()

    job.refresh_from_db()
    assert job.status == JobStatus.DEAD and len(started) == 4  # three killed, the fourth rescues the last
    assert [entry["outcome"] for entry in job.history] == ["lost"] * 3
    assert "lost 3 times (MAX_LOST=3)" in job.history[-1]["reason"] and job.attempts == 3
    assert SideEffect.objects.filter(job_id=job.pk).count() == 3


def test_poison_pill__a_job_that_kills_its_child_ends_dead_after_max_lost_losses(workers):
    job = jobs.kill_own_child.enqueue()
    worker = workers("--concurrency", "1", "--no-scheduler")
    wait_until(lambda: Job.objects.get(pk=job.pk).status == JobStatus.DEAD, timeout=30,
               message=lambda: f"the job to end dead; {worker.describe()}")

    job.refresh_from_db()
    assert [entry["outcome"] for entry in job.history] == ["lost"] * 3
    assert "lost 3 times (MAX_LOST=3)" in job.history[-1]["reason"] and job.attempts == 3
    assert SideEffect.objects.filter(job_id=job.pk).count() == 3
    assert worker.proc.poll() is None  # the worker itself carried on


def test_sigterm__a_started_max_attempts_1_job_past_grace_ends_dead_instead_of_running_again(workers):
    job = jobs.sleep_for.using(max_attempts=1).enqueue(5.0)
    worker = workers("--concurrency", "1", "--grace", "0.3", "--no-scheduler")
    wait_until(lambda: SideEffect.objects.filter(job_id=job.pk).exists(), message="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0

    job.refresh_from_db()
    assert (job.status, [entry["outcome"] for entry in job.history]) == (JobStatus.DEAD, ["lost"])
    assert "at most once" in job.history[-1]["reason"]


def test_frozen_worker__starts_none_of_the_max_attempts_1_jobs_rescue_gave_back(workers):
    created = jobs.record_once.enqueue_many([[f"j{i}"] for i in range(300)])
    frozen = workers("--concurrency", str(CHILDREN), "--worker-id", "elsewhere:frozen", "--no-scheduler")
    wait_until(lambda: SideEffect.objects.count() >= 50, timeout=60, message=lambda: f"50 jobs to run; {frozen.describe()}")
    frozen.signal(signal.SIGSTOP)  # past RESCUE_AFTER: taken for dead while it holds jobs
    try:
        held = set(Job.objects.filter(status=JobStatus.RUNNING).values_list("id", flat=True))
        survivor = workers("--concurrency", str(CHILDREN), "--worker-id", "survivor", "--no-scheduler")
        wait_until(lambda: not Job.objects.filter(pk__in=held, status=JobStatus.RUNNING).exists(), timeout=30,
                   message=lambda: f"the frozen worker's jobs to be rescued; {survivor.describe()}")
    finally:
        frozen.signal(signal.SIGCONT)
    wait_until(
        lambda: not Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.RUNNING]).exists(),
        timeout=120, message=lambda: f"every job to end; {survivor.describe()}",
    )
    assert held
    runs = runs_per_job()
    for job in Job.objects.filter(pk__in=[j.pk for j in created]):
        assert runs.get(job.pk, 0) <= 1, (job.pk, runs.get(job.pk), job.history)
        assert job.status in (JobStatus.SUCCEEDED, JobStatus.DEAD), (job.pk, job.status, job.history)
        assert (job.status == JobStatus.SUCCEEDED) == (runs.get(job.pk) == 1) or job.pk in held
    frozen.wait_for_output("event=worker_row_gone", timeout=30)
    # It carries on: its row is back, with a declaration.
    wait_until(lambda: Worker.objects.filter(worker_id="elsewhere:frozen", may_start__isnull=False).exists(),
               message=lambda: f"the row to be written again; {frozen.describe()}")
    assert frozen.proc.poll() is None
