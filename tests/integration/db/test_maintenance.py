"""db/maintenance.py: prune deletes one status's old finished jobs, a batch at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_jobs.db.maintenance import prune
from django_jobs.models import Job
from tests.support import snapshots
from tests.support.factories import bulk_finished

pytestmark = pytest.mark.django_db


def test_prune__counts_on_a_dry_run_and_deletes_at_most_a_batch_of_one_status() -> None:
    bulk_finished(5, "succeeded", timedelta(days=8))
    bulk_finished(2, "succeeded", timedelta(hours=1))  # too recent
    bulk_finished(3, "dead", timedelta(days=8))  # another status
    before = timezone.now() - timedelta(days=1)

    assert prune("default", status="succeeded", finished_before=before, batch=100, dry_run=True) == 5
    assert Job.objects.count() == 10

    assert prune("default", status="succeeded", finished_before=before, batch=4) == 4
    assert prune("default", status="succeeded", finished_before=before, batch=4) == 1
    assert Job.objects.filter(status="succeeded").count() == 2
    assert Job.objects.filter(status="dead").count() == 3


@pytest.mark.django_db(transaction=True)
def test_prune__leaves_a_job_retried_while_the_batch_ran_and_deletes_one_changed_but_still_due(
    second_connection: Any,
) -> None:
    """The batch locks its rows, then deletes them by where the lock found them (their ctid): a
    row an operator retried after the batch's snapshot must be left, and a row changed in a way
    that leaves it due is deleted from its new place, not missed or the count thrown off."""
    ahead = 200_000  # rows the batch locks before it reaches the two below: ~1 s of work
    bulk_finished(ahead, "succeeded", timedelta(days=8))
    bulk_finished(2, "succeeded", timedelta(days=7))
    retried, touched = Job.objects.order_by("-id").values_list("id", flat=True)[:2]
    before = timezone.now() - timedelta(days=1)

    def prune_batch() -> int:
        return prune("default", status="succeeded", finished_before=before, batch=ahead + 10)

    with snapshots.running(second_connection, "WITH deleted AS%", prune_batch) as batch:
        Job.objects.filter(pk=retried).update(status="queued", finished_at=None)
        Job.objects.filter(pk=touched).update(last_error="noted by an operator")
        assert not batch.ended, "the batch ended before the updates: raise `ahead`"

    assert (batch.returned, batch.raised) == ([ahead + 1], [])
    assert list(Job.objects.values_list("id", "status")) == [(retried, "queued")]
