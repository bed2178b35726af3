"""Rescue: jobs of a silent worker go back to the queue once, however many rescuers run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_jobs.models import Job, JobStatus, Worker
from django_jobs.services.rescue import rescue
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _orphans(count: int, now: Any) -> list[Job]:
    Worker.objects.create(
        worker_id="gone:1", hostname="gone", pid=1, queues=[], concurrency=2,
        last_heartbeat=now - timedelta(minutes=10),
    )
    return [
        JobFactory(status=JobStatus.RUNNING, attempts=1, max_attempts=3, worker_id="gone:1",
                   started_at=now - timedelta(minutes=10))
        for _ in range(count)
    ]


def test_rescue__two_rescuers_at_once_rescue_each_job_once(second_connection: Any) -> None:
    now = timezone.now()
    jobs = _orphans(3, now)
    locked = jobs[0]
    # The second connection plays a rescuer caught mid-statement: it holds one row's lock.
    second_connection.autocommit = False
    second_connection.execute("SELECT id FROM django_jobs_job WHERE id = %s FOR UPDATE", [locked.id])

    first = rescue("default", now=now, rescuer="rescuer-a")
    assert sorted(r[0] for r in first) == sorted(j.id for j in jobs[1:])  # skipped, not waited on

    second_connection.commit()
    second = rescue("default", now=now, rescuer="rescuer-b")
    assert [r[0] for r in second] == [locked.id]
    assert rescue("default", now=now, rescuer="rescuer-c") == []  # nothing left to rescue twice

    for job in jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.RETRYING
        lost = [h for h in job.history if h["outcome"] == "lost"]
        assert len(lost) == 1 and lost[0]["worker"] == "gone:1"
        assert lost[0]["error"]["class"] == "django_jobs.exceptions.WorkerLost"
    assert not Worker.objects.filter(worker_id="gone:1").exists()


def test_rescue__a_live_workers_jobs_are_left_alone() -> None:
    now = timezone.now()
    Worker.objects.create(worker_id="alive:1", hostname="alive", pid=1, queues=[], concurrency=1,
                          last_heartbeat=now)
    job = JobFactory(status=JobStatus.RUNNING, attempts=1, worker_id="alive:1",
                     started_at=now - timedelta(hours=1))

    assert rescue("default", now=now, rescuer="r") == []
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_rescue__spent_attempts_end_dead_and_stop_requests_end_stopped() -> None:
    now = timezone.now()
    spent, asked = _orphans(2, now)
    Job.objects.filter(pk=spent.pk).update(attempts=3)
    Job.objects.filter(pk=asked.pk).update(stop_requested_at=now)

    rescue("default", now=now, rescuer="r")

    spent.refresh_from_db()
    asked.refresh_from_db()
    assert (spent.status, asked.status) == (JobStatus.DEAD, JobStatus.STOPPED)
    assert spent.finished_at is not None and asked.finished_at is not None


def test_rescue__a_job_lost_max_lost_times_ends_dead_whatever_its_attempts(settings: Any) -> None:
    settings.DJANGO_JOBS = {"MAX_LOST": 3}
    now = timezone.now()
    twice, once = _orphans(2, now)
    lost = {"outcome": "lost", "attempt": 1, "worker": "gone:0"}
    Job.objects.filter(pk=twice.pk).update(attempts=3, max_attempts=10, history=[lost, lost])
    Job.objects.filter(pk=once.pk).update(attempts=2, max_attempts=10, history=[lost, {"outcome": "failed"}])

    rescue("default", now=now, rescuer="r")

    twice.refresh_from_db()
    once.refresh_from_db()
    assert twice.status == JobStatus.DEAD and "lost 3 times (MAX_LOST=3)" in twice.history[-1]["reason"]
    assert once.status == JobStatus.RETRYING


def test_rescue__a_worker_row_without_a_declaration_proves_nothing() -> None:
    now = timezone.now()
    (job,) = _orphans(1, now)  # the row has no may_start (a worker of the previous version)

    rescue("default", now=now, rescuer="r")

    job.refresh_from_db()
    assert (job.status, job.history[-1]["outcome"]) == (JobStatus.RETRYING, "lost")


def test_rescue__a_silent_workers_jobs_claimed_just_before_it_died_go_in_the_same_pass() -> None:
    # The pass deletes the worker's row: a job left for a later pass would find no declaration
    # there, and count as lost although it never started.
    now = timezone.now()
    Worker.objects.create(worker_id="gone:2", hostname="gone", pid=2, queues=[], concurrency=1,
                          last_heartbeat=now - timedelta(minutes=10))
    declared, undeclared = (
        JobFactory(status=JobStatus.RUNNING, attempts=1, max_attempts=1, worker_id="gone:2", started_at=now)
        for _ in range(2)
    )
    Worker.objects.filter(worker_id="gone:2").update(may_start=[declared.id])

    assert sorted(r[0] for r in rescue("default", now=now, rescuer="r")) == sorted([declared.id, undeclared.id])

    declared.refresh_from_db()
    undeclared.refresh_from_db()
    assert (declared.status, undeclared.status, undeclared.attempts) == (JobStatus.DEAD, JobStatus.QUEUED, 0)
    assert not Worker.objects.filter(worker_id="gone:2").exists()
