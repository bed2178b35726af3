"""db/maintenance.py: prune deletes one status's old finished jobs, a batch at a time."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
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
def test_prune__leaves_a_job_retried_while_the_batch_ran_and_never_a_row_it_did_not_count(
    second_connection: Any,
) -> None:
    """The batch locks its rows, then deletes them by where it found them (their ctid): a row an
    operator retried after the batch's snapshot must be left, and a row changed in a way that
    leaves it due is either deleted or left for the next batch, and counted as what happened."""
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

    assert batch.raised == []
    left = set(Job.objects.values_list("id", flat=True))
    assert batch.returned == [ahead + 2 - len(left)]
    assert left - {touched} == {retried}
    # (PostgreSQL mostly hands back the ctid it first saw for a row updated before the lock, and
    # the DELETE then finds a newer version there and leaves it: the next batch takes it.)
    assert prune("default", status="succeeded", finished_before=before, batch=10) == len(left) - 1
    assert list(Job.objects.values_list("id", "status")) == [(retried, "queued")]


@pytest.mark.django_db(transaction=True)
def test_prune__two_pruners_at_once_delete_every_due_row_once_between_them() -> None:
    """Every worker runs a pruner: two batches at once each pass over the rows the other has
    locked, and between them delete every due row, each once, with no error."""
    bulk_finished(6_000, "succeeded", timedelta(days=8))
    before = timezone.now() - timedelta(days=1)
    counts: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def pruner() -> None:
        try:
            start.wait(timeout=30)
            total = 0
            while deleted := prune("default", status="succeeded", finished_before=before, batch=500):
                total += deleted
            counts.append(total)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=pruner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(counts) == 6_000 and len(counts) == 2
    assert not Job.objects.exists()
