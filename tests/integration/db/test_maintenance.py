"""db/maintenance.py: prune deletes one status's old finished jobs, a batch at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.db.maintenance import prune
from django_jobs.models import Job
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
