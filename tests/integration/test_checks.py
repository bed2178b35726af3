"""checks.py against the database: W101, a schedule for a job no process registers."""

from __future__ import annotations

import pytest
from django.core.checks import Warning

from django_jobs import checks


@pytest.mark.django_db
def test_w101__an_enabled_schedule_for_an_unregistered_job_is_reported() -> None:
    from django.core.checks import run_checks as run_django_checks

    from django_jobs.models import Schedule

    Schedule.objects.create(name="gone", job_name="tests.testapp.jobs.recrod", cron="0 * * * *")
    Schedule.objects.create(name="fine", job_name="tests.testapp.jobs.record", cron="0 * * * *")
    Schedule.objects.create(name="off", job_name="gone.jobs.old", cron="0 * * * *", enabled=False)

    messages = [m for m in run_django_checks(databases=["default"]) if m.id == "django_jobs.W101"]

    (message,) = messages
    assert isinstance(message, Warning)
    assert message.msg.startswith(
        "The schedule 'gone' enqueues 'tests.testapp.jobs.recrod'. It never fires: No job is "
        "registered as 'tests.testapp.jobs.recrod'. Did you mean 'tests.testapp.jobs.record'?"
    )
    assert "Register the job" in message.hint and "disable or delete it" in message.hint


@pytest.mark.django_db
def test_w101__is_a_database_check_run_only_when_a_database_is_named() -> None:
    from django_jobs.models import Schedule

    Schedule.objects.create(name="gone", job_name="gone.jobs.old", cron="0 * * * *")

    assert checks.check_schedule_rows(databases=None) == []
    assert checks.check_schedule_rows(databases=["other"]) == []
    assert [m.id for m in checks.check_schedule_rows(databases=["default"])] == ["django_jobs.W101"]
