"""The prunejobs command: retention from the settings, --dry-run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command

from django_jobs.models import Job
from tests.support.factories import bulk_finished

pytestmark = pytest.mark.django_db(transaction=True)

def test_prune__keep_forever_and_command_dry_run(capsys, settings):
    settings.DJANGO_JOBS = {"RETENTION": {"succeeded": None, "dead": 0}}
    bulk_finished(3, "succeeded", timedelta(days=999))
    bulk_finished(2, "dead", timedelta(seconds=5))
    call_command("prunejobs", "--dry-run")
    out = capsys.readouterr().out
    assert "succeeded: kept forever" in out and "dead: would delete 2" in out
    assert Job.objects.count() == 5
    call_command("prunejobs")
    assert Job.objects.filter(status="dead").count() == 0
    assert Job.objects.filter(status="succeeded").count() == 3


def test_prune__the_command_says_each_retention_in_words(capsys, settings):
    settings.DJANGO_JOBS = {"RETENTION": {"succeeded": 7 * 86400, "stopped": timedelta(hours=36), "dead": 90}}

    call_command("prunejobs", "--dry-run")

    assert capsys.readouterr().out.splitlines() == [
        "succeeded: would delete 0 (older than 7 days)",
        "stopped: would delete 0 (older than 36 hours)",
        "dead: would delete 0 (older than 90 seconds)",
    ]
