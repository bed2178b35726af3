"""``runjobs --burst`` as a real process: what it leaves for later, and ``--due-within``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from django_jobs.models import Job, JobStatus
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

BURST = ("--burst", "--concurrency", "1", "--no-scheduler")


def test_burst__exits_without_waiting_for_a_retry_not_yet_due(worker_process: Any) -> None:
    job = jobs.flaky_once.enqueue("once")

    worker = worker_process(*BURST)

    assert worker.wait(timeout=60) == 0, worker.describe()
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts) == (JobStatus.RETRYING, 1)  # due a second later: left for the next run
    assert SideEffect.objects.filter(job_id=job.pk).count() == 1


def test_burst__with_due_within_waits_for_a_retry_that_falls_due_in_the_window(worker_process: Any) -> None:
    job = jobs.flaky_once.enqueue("twice")

    worker = worker_process(*BURST, "--due-within", "30")

    assert worker.wait(timeout=60) == 0, worker.describe()
    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts, row.result) == (JobStatus.SUCCEEDED, 2, "ok")
    assert SideEffect.objects.filter(job_id=job.pk).count() == 2


def test_burst__with_due_within_does_not_wait_for_a_job_due_after_the_window(worker_process: Any) -> None:
    later = jobs.record.using(delay=timedelta(hours=1)).enqueue("later")

    worker = worker_process(*BURST, "--due-within", "30")

    assert worker.wait(timeout=60) == 0, worker.describe()
    assert Job.objects.get(pk=later.pk).status == JobStatus.QUEUED
