"""Helpers for the scheduler's tests (unit, integration and process): a clock, schedules, settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.test import override_settings

from django_jobs.models import Job, Schedule

UTC = UTC
RECORD = "tests.testapp.jobs.record"
#: A Monday, half a minute past nine: "now" unless a test says otherwise.
T0 = datetime(2030, 1, 7, 9, 0, 30, tzinfo=UTC)


def make(cron: str = "0 * * * *", now: datetime = T0, **fields: Any) -> Schedule:
    """A schedule saved at ``now`` (so its next_run_at is the first tick after it)."""
    fields.setdefault("name", f"every {cron} {len(Schedule.objects.all())}")
    fields.setdefault("job_name", RECORD)
    fields.setdefault("timezone", "UTC")
    schedule = Schedule(cron=cron, **fields)
    assert schedule.problems() == {}
    schedule.save(now=now)
    return schedule


def ticks_of(schedule: Schedule) -> list[datetime]:
    """The ticks ``schedule`` has enqueued a job for, oldest first."""
    return list(Job.objects.filter(schedule=schedule).order_by("scheduled_for").values_list("scheduled_for", flat=True))


def jobs_settings(**values: Any) -> Any:
    """Override some ``DJANGO_JOBS`` settings, keeping the test settings' others."""
    return override_settings(DJANGO_JOBS={**settings.DJANGO_JOBS, **values})
