"""factory-boy factories for the job tables."""

from __future__ import annotations

import factory
from django.utils import timezone

from django_jobs.models import Job, JobStatus


class JobFactory(factory.django.DjangoModelFactory):
    """A ready ``tests.testapp.jobs.record`` job, written with the ORM (not via enqueue)."""

    class Meta:
        model = Job

    name = "tests.testapp.jobs.record"
    args = factory.List([])
    kwargs = factory.Dict({})
    queue = "default"
    priority = 0
    status = JobStatus.QUEUED
    max_attempts = 3
    run_at = factory.LazyFunction(timezone.now)
    created_at = factory.LazyFunction(timezone.now)

    class Params:
        # JobFactory(finished=True): a succeeded job with its finish time set.
        finished = factory.Trait(
            status=JobStatus.SUCCEEDED,
            attempts=1,
            finished_at=factory.LazyFunction(timezone.now),
        )
