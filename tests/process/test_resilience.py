"""Nothing lost: real worker processes killed, frozen, stopped and signalled."""

from __future__ import annotations

import json
import signal

import pytest
from django.core.management import call_command

from django_jobs.models import Job, JobStatus, Pause
from tests.support.procs import WorkerProcess, wait_until
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

FAST = {"HEARTBEAT_INTERVAL": 0.2, "RESCUE_AFTER": 2.0, "STOP_GRACE": 1.0, "POLL_INTERVAL": 0.1}


@pytest.fixture
def workers(worker_process):
    """Start runjobs subprocesses with fast heartbeats and a short rescue window."""

    def start(*args: str, settings: dict | None = None) -> WorkerProcess:
        tuned = json.dumps({**FAST, **(settings or {})})
        return worker_process(*args, env={"DJANGO_JOBS_TEST_SETTINGS": tuned})

    return start


def status_of(job: Job) -> str:
    job.refresh_from_db()
    return job.status


def started(job: Job) -> bool:
    return SideEffect.objects.filter(job_id=job.id).exists()


def kill_family(process: WorkerProcess) -> None:
    """SIGKILL the worker and its children at once, as a node or pod dying would."""
    process.kill()


def test_kill9__job_rescued_by_another_worker_within_rescue_window(workers):
    job = jobs.sleep_for.enqueue(1.0)
    doomed = workers("--concurrency", "1", "--worker-id", "elsewhere:doomed")
    wait_until(lambda: started(job), message="the job to start on the first worker")
    kill_family(doomed)
    assert status_of(job) == JobStatus.RUNNING

    workers("--concurrency", "1", "--worker-id", "survivor")
    wait_until(lambda: status_of(job) == JobStatus.SUCCEEDED, timeout=30, message="rescue and completion")

    job.refresh_from_db()
    lost, done = job.history
    assert lost["outcome"] == "lost" and lost["worker"] == "elsewhere:doomed"
    assert lost["error"]["class"] == "django_jobs.exceptions.WorkerLost"
    assert done["outcome"] == "succeeded" and done["worker"] == "survivor" and done["attempt"] == 2


def test_kill9__mid_drain_of_short_jobs_every_job_succeeds_and_only_rescued_ones_ran_twice(workers):
    # Short jobs are claimed ahead, sent to children in batches, and their outcomes written in
    # batches: a worker killed mid-drain holds jobs in all three places. None may be lost, and a
    # job may run again only through rescue (a `lost` entry), never silently.
    created = jobs.record.enqueue_many([[f"j{i}"] for i in range(2000)])
    doomed = workers("--concurrency", "2", "--worker-id", "elsewhere:doomed", "--no-scheduler")
    wait_until(lambda: SideEffect.objects.count() >= 500, timeout=60, message="500 jobs to run")
    kill_family(doomed)
    held = Job.objects.filter(status=JobStatus.RUNNING).count()

    workers("--concurrency", "2", "--worker-id", "survivor", "--no-scheduler")
    wait_until(
        lambda: Job.objects.filter(status=JobStatus.SUCCEEDED).count() == len(created),
        timeout=120, message=lambda: f"every job to succeed: {Job.objects.exclude(status=JobStatus.SUCCEEDED).count()} left",
    )

    assert held > 0  # the kill caught jobs in flight
    runs: dict[int, int] = {}
    for job_id in SideEffect.objects.values_list("job_id", flat=True):
        runs[job_id] = runs.get(job_id, 0) + 1
    rescued = 0
    for job in Job.objects.filter(pk__in=[j.pk for j in created]):
        outcomes = [entry["outcome"] for entry in job.history]
        assert outcomes[-1] == "succeeded" and set(outcomes[:-1]) <= {"lost"}, (job.pk, outcomes)
        assert 1 <= runs.get(job.pk, 0) <= len(outcomes), (job.pk, runs.get(job.pk), outcomes)
        rescued += len(outcomes) > 1
    assert rescued == held


def test_restarted_worker__rescues_its_own_jobs_without_waiting(workers):
    job = jobs.sleep_for.enqueue(0.5)
    slow_rescue = {"RESCUE_AFTER": 600.0}
    first = workers("--concurrency", "1", settings=slow_rescue)
    wait_until(lambda: started(job), message="the job to start")
    kill_family(first)

    # Same host, dead pid: the new worker knows the orphan is its predecessor's and rescues it
    # at start-up, long before the 600 s rescue window.
    second = workers("--concurrency", "1", settings=slow_rescue)
    wait_until(lambda: status_of(job) == JobStatus.SUCCEEDED, timeout=30, message="self-rescue")
    assert "event=rescued" in second.output()
    job.refresh_from_db()
    assert [h["outcome"] for h in job.history] == ["lost", "succeeded"]


def test_frozen_worker__cannot_overwrite_the_rescued_attempt(workers):
    job = jobs.sleep_for.enqueue(0.5)
    frozen = workers("--concurrency", "1", "--worker-id", "elsewhere:frozen")
    wait_until(lambda: started(job), message="the job to start")
    frozen.signal(signal.SIGSTOP)  # the parent freezes; its child finishes and waits on the pipe
    try:
        workers("--concurrency", "1", "--worker-id", "thawed-rescuer")
        wait_until(lambda: status_of(job) == JobStatus.SUCCEEDED, timeout=30, message="rescue")
        job.refresh_from_db()
        history_before = list(job.history)
    finally:
        frozen.signal(signal.SIGCONT)
    frozen.wait_for_output("event=outcome_fenced")

    job.refresh_from_db()
    assert job.history == history_before
    assert job.attempts == 2
    assert [h["worker"] for h in job.history] == ["elsewhere:frozen", "thawed-rescuer"]


def test_sigterm__running_job_finishes_within_grace_and_exit_is_clean(workers):
    job = jobs.sleep_for.enqueue(1.0)
    worker = workers("--concurrency", "1", "--grace", "20")
    wait_until(lambda: started(job), message="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1
    assert "mode=graceful" in worker.output()


def test_sigterm__job_past_grace_is_handed_back_without_spending_an_attempt(workers):
    job = jobs.sleep_for.enqueue(2.0)
    worker = workers("--concurrency", "1", "--grace", "0.3")
    wait_until(lambda: started(job), message="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.attempts == 0
    assert job.history[-1]["outcome"] == "handed_back"

    workers("--concurrency", "1", "--burst")
    wait_until(lambda: status_of(job) == JobStatus.SUCCEEDED, timeout=30, message="the later run")
    job.refresh_from_db()
    assert job.attempts == 1


def test_second_signal__stops_at_once(workers):
    job = jobs.sleep_for.enqueue(60.0)
    worker = workers("--concurrency", "1", "--grace", "60")
    wait_until(lambda: started(job), message="the job to start")
    worker.signal(signal.SIGTERM)
    worker.wait_for_output("mode=graceful")
    worker.signal(signal.SIGINT)
    assert worker.wait(timeout=15) == 0
    assert status_of(job) == JobStatus.QUEUED


def test_stop__running_job_that_ignores_it_is_killed_while_its_neighbour_completes(workers):
    stuck = jobs.sleep_for.enqueue(120.0)
    neighbour = jobs.sleep_for.enqueue(1.5)
    workers("--concurrency", "2")
    wait_until(lambda: started(stuck) and started(neighbour), message="both jobs to start")

    assert stuck.stop() is True
    wait_until(lambda: status_of(stuck) == JobStatus.STOPPED, timeout=15, message="the stop")
    wait_until(lambda: status_of(neighbour) == JobStatus.SUCCEEDED, timeout=15, message="the neighbour")
    stuck.refresh_from_db()
    assert stuck.history[-1]["outcome"] == "stopped"
    assert stuck.finished_at is not None


def test_stop__cooperative_job_sees_the_request_and_ends_stopped(workers):
    job = jobs.cooperative_loop.enqueue()
    worker = workers("--concurrency", "1", settings={"STOP_GRACE": 30.0})
    wait_until(lambda: started(job), message="the job to start")
    job.stop()
    wait_until(lambda: status_of(job) == JobStatus.STOPPED, timeout=15, message="the stop")
    job.refresh_from_db()
    assert job.result == "noticed the stop request"
    # It returned, but it was asked to stop: status, history and log all say stopped.
    entry = job.history[-1]
    assert (entry["outcome"], entry["ended_as"], entry["reason"]) == ("stopped", "succeeded", "stopped on request")
    worker.wait_for_output(f"event=stopped job={job.id} ")
    line = next(x for x in worker.output().splitlines() if f"event=stopped job={job.id} " in x)
    assert "status=stopped" in line
    assert f"event=succeeded job={job.id} " not in worker.output()


def test_sigterm__cooperative_job_checkpoints_is_handed_back_and_goes_on_from_its_checkpoint(workers):
    job = jobs.checkpointed_steps.enqueue(steps=200, seconds=0.05)  # 10 s of steps
    worker = workers("--concurrency", "1", "--grace", "25")
    wait_until(lambda: started(job), message="the job to start")
    worker.signal(signal.SIGTERM)
    # It sees stop_requested during the grace, checkpoints and returns: the worker exits at
    # once instead of killing it 25 s later.
    assert worker.wait(timeout=20) == 0, worker.describe()
    checkpoint = SideEffect.objects.get(job_id=job.id, label__startswith="checkpoint:").label
    step = int(checkpoint.split(":")[1])
    assert 0 <= step < 200
    job.refresh_from_db()
    # Handed back, not succeeded: status, history and log agree, and no attempt was spent.
    assert job.status == JobStatus.QUEUED and job.attempts == 0
    entry = job.history[-1]
    assert entry["outcome"] == "handed_back"
    assert entry["reason"] == "returned after stop_requested said the worker was shutting down"
    line = next(x for x in worker.output().splitlines() if f"job={job.id} " in x and "event=handed_back" in x)
    assert "status=queued" in line
    assert "event=succeeded" not in worker.output()

    # The next worker goes on from the checkpoint, not from scratch.
    SideEffect.objects.filter(job_id=job.id, label=checkpoint).update(label="checkpoint:195")
    workers("--concurrency", "1", "--burst")
    wait_until(lambda: status_of(job) == JobStatus.SUCCEEDED, timeout=30, message="the later run")
    job.refresh_from_db()
    assert job.result == "done from 195" and job.attempts == 1
    assert [h["outcome"] for h in job.history] == ["handed_back", "succeeded"]


def test_stop__waiting_job_never_runs():
    job = jobs.record.enqueue(label="never")
    assert job.stop() is True
    assert job.status == JobStatus.STOPPED
    call_command("runjobs", "--burst", "--concurrency", "1")
    assert not SideEffect.objects.filter(job_id=job.id).exists()


@pytest.mark.parametrize("kind", ["queue", "name"])
def test_pause__holds_jobs_on_every_worker_until_resumed(workers, kind):
    if kind == "queue":
        Pause.objects.pause_queue("held")
        held = [jobs.record.using(queue="held").enqueue(label=str(i)) for i in range(4)]
    else:
        Pause.objects.pause_job("tests.add")
        held = [jobs.add.enqueue(i, i) for i in range(4)]
    first, second = workers("--worker-id", "w1"), workers("--worker-id", "w2")
    # Canaries prove both workers are up and claiming while the held jobs wait.
    canaries = [jobs.record.enqueue(label=f"canary{i}") for i in range(6)]
    wait_until(lambda: all(status_of(c) == JobStatus.SUCCEEDED for c in canaries), message="canaries")
    wait_until(lambda: "event=worker_started" in first.output() and "event=worker_started" in second.output())
    assert all(status_of(j) == JobStatus.QUEUED for j in held)

    if kind == "queue":
        assert Pause.objects.resume_queue("held") is True
    else:
        assert Pause.objects.resume_job("tests.add") is True
    wait_until(lambda: all(status_of(j) == JobStatus.SUCCEEDED for j in held), message="resumed jobs")
    assert SideEffect.objects.filter(job_id__in=[j.id for j in held]).count() == 4


