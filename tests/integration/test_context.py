"""context.py: what a running job knows about itself and reports back."""

from __future__ import annotations

import pytest
from django.utils import timezone

from django_jobs.context import JobContext, current_job
from django_jobs.models import Job
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db


def context_of(job: Job, attempt: int = 1) -> JobContext:
    return JobContext(id=job.pk, name=job.name, attempt=attempt, max_attempts=3, queue="default",
                      worker_id="w-test", using="default")


def test_current_job__is_none_outside_a_job() -> None:
    assert current_job() is None


def test_set_progress__stored_for_the_running_attempt_only() -> None:
    job = JobFactory(status="running", attempts=2)

    context_of(job, attempt=1).set_progress(10, "an older attempt")
    assert Job.objects.get(pk=job.pk).progress is None

    context_of(job, attempt=2).set_progress(40, "400 of 1000")
    progress = Job.objects.get(pk=job.pk).progress
    assert (progress["percent"], progress["message"]) == (40, "400 of 1000")


def test_stop_requested__once_someone_asked() -> None:
    job = JobFactory(status="running", attempts=1)
    context = context_of(job)
    assert not context.stop_requested

    Job.objects.filter(pk=job.pk).update(stop_requested_at=timezone.now())

    assert context.stop_requested
