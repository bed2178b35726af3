"""Workflows with real ``runjobs`` processes: a fan-in whose upstream jobs finish on four workers
at once queues its downstream job exactly once; a chain runs in order across workers. Checks are
made on what the job bodies recorded (SideEffect rows) and the stored timestamps."""

from __future__ import annotations

import json
from typing import Any

import pytest

from django_jobs.models import Job, JobStatus
from tests.support.procs import WorkerProcess, wait_until
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

FAST = {"HEARTBEAT_INTERVAL": 0.2, "RESCUE_AFTER": 2.0, "POLL_INTERVAL": 0.5}


@pytest.fixture
def workers(worker_process: Any) -> Any:
    def start(count: int, concurrency: int = 4) -> list[WorkerProcess]:
        env = {"DJANGO_JOBS_TEST_SETTINGS": json.dumps(FAST)}
        return [
            worker_process("--concurrency", str(concurrency), "--no-scheduler", "--worker-id", f"wf-{n}", env=env)
            for n in range(count)
        ]

    return start


def finished(job: Job, timeout: float = 120) -> Job:
    wait_until(
        lambda: Job.objects.filter(pk=job.pk, status__in=("succeeded", "dead", "stopped")).exists(),
        timeout=timeout,
        message=lambda: f"job #{job.pk} to finish: {Job.objects.get(pk=job.pk).status}",
    )
    return Job.objects.get(pk=job.pk)


def test_fan_in__four_workers_drain_200_upstream_jobs_and_the_downstream_runs_once(workers: Any) -> None:
    upstream = jobs.step.enqueue_many([[f"part{n}", 1] for n in range(200)])
    (total,) = jobs.total_upstream.enqueue_many([["total"]], after=upstream)

    workers(4, concurrency=4)
    done = finished(total)

    assert done.status == JobStatus.SUCCEEDED
    assert done.result == 200
    assert SideEffect.objects.filter(label="total=200").count() == 1
    assert SideEffect.objects.filter(label__startswith="part").count() == 200
    # The body ran after the last upstream outcome. (Its job's started_at is the claiming worker's
    # clock read before its statement, which may then wait for that outcome's commit: it can be a
    # few ms earlier than a finished_at stamped meanwhile. The body starts after the claim.)
    last_upstream = max(Job.objects.filter(pk__in=[j.pk for j in upstream]).values_list("finished_at", flat=True))
    assert SideEffect.objects.get(label="total=200").created_at >= last_upstream
    assert done.attempts == 1


def test_chain__of_five_runs_in_order_on_three_workers(workers: Any) -> None:
    chain = [jobs.step.enqueue("1")]
    for n in range(2, 6):
        chain.append(jobs.step.using(after=[chain[-1]]).enqueue(str(n)))

    workers(3, concurrency=2)
    finished(chain[-1])

    runs = list(SideEffect.objects.order_by("id").values_list("label", flat=True))
    assert runs == ["1", "2", "3", "4", "5"]
    stored = [Job.objects.get(pk=j.pk) for j in chain]
    bodies = [SideEffect.objects.get(job_id=j.pk) for j in chain]
    for before, after in zip(stored, bodies[1:]):  # each body ran after its upstream's outcome
        assert after.created_at >= before.finished_at


def test_cascade_and_rearm__a_dead_upstream_stops_its_downstream_and_a_retry_runs_them_once(workers: Any) -> None:
    upstream = jobs.fail_unless_fixed.enqueue("upstream")
    middle = jobs.step.using(after=[upstream]).enqueue("middle")
    last = jobs.step.using(after=[middle]).enqueue("last")
    workers(2, concurrency=2)

    assert finished(upstream).status == JobStatus.DEAD
    for job in (middle, last):
        stopped = finished(job)
        assert (stopped.status, stopped.last_error) == (JobStatus.STOPPED, f"upstream job #{upstream.pk} ended dead")

    SideEffect.objects.create(job_id=0, label="fixed")
    assert Job.objects.get(pk=upstream.pk).retry()
    wait_until(
        lambda: Job.objects.filter(pk=last.pk, status=JobStatus.SUCCEEDED).exists(),
        timeout=60, message=lambda: f"the last job to succeed: {Job.objects.get(pk=last.pk).status}",
    )

    runs = list(SideEffect.objects.order_by("id").values_list("label", flat=True))
    assert runs == ["fixed", "upstream", "middle", "last"]
