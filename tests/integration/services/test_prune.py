"""Pruning (django_jobs/services/prune.py): old finished jobs go in bounded batches, nothing unfinished."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.models import Job
from django_jobs.services.prune import prune
from tests.support.factories import bulk_finished

pytestmark = pytest.mark.django_db(transaction=True)

def test_prune__deletes_old_finished_jobs_in_bounded_batches_and_nothing_unfinished():
    bulk_finished(2500, "succeeded", timedelta(days=8))
    bulk_finished(10, "succeeded", timedelta(days=1))  # within retention
    bulk_finished(30, "dead", timedelta(days=40))
    bulk_finished(30, "dead", timedelta(days=10))  # within dead's 30 days
    for status in ("queued", "retrying", "running"):
        bulk_finished(5, status, timedelta(days=400))  # old, but not finished

    assert prune("default", now=timezone.now(), dry_run=True) == {"succeeded": 2500, "stopped": 0, "dead": 30}
    assert Job.objects.count() == 2585

    deleted = prune("default", now=timezone.now(), batch=1000, max_batches=2)
    assert deleted == {"succeeded": 2000, "stopped": 0, "dead": 30}  # two bounded batches at most
    deleted = prune("default", now=timezone.now(), batch=1000)
    assert deleted == {"succeeded": 500, "stopped": 0, "dead": 0}  # the rest, next run
    assert Job.objects.filter(status__in=["queued", "retrying", "running"]).count() == 15
    assert Job.objects.filter(status="succeeded").count() == 10
    assert Job.objects.filter(status="dead").count() == 30
