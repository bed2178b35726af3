"""The pytest plugin: the enqueued_jobs fixture."""

from __future__ import annotations

import pytest
from django.db import transaction

from django_jobs import enqueue
from django_jobs.models import Job, JobStatus
from django_jobs.testing import EnqueuedJobs
from tests.testapp import jobs


def test_fixture__captures_the_whole_test(enqueued_jobs: EnqueuedJobs) -> None:
    enqueue("tests.add", 4, 5)
    enqueued_jobs.assert_enqueued("tests.add", args=[4, 5])
    (ran,) = enqueued_jobs.run()
    assert ran.result == 9


def test_fixture__runs_on_commit_enqueues(enqueued_jobs: EnqueuedJobs) -> None:
    transaction.on_commit(lambda: jobs.record.enqueue("later"))
    enqueued_jobs.run()
    assert Job.objects.get().status == JobStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_fixture__works_in_transactional_tests(enqueued_jobs: EnqueuedJobs) -> None:
    with transaction.atomic():
        transaction.on_commit(lambda: jobs.record.enqueue("committed"))
    enqueued_jobs.assert_enqueued(jobs.record, args=["committed"])
    (ran,) = enqueued_jobs.run()
    assert ran.status == JobStatus.SUCCEEDED
