"""The audit trail and the missed-schedule flag in a real browser (headless Chromium, Playwright):
an operator retries a dead job and finds it in "Recent actions" and on the job's history page,
and a schedule whose job never succeeded shows as missed on its page and in the list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_jobs.models import JobStatus, Schedule
from tests.support.browser import messages, shot
from tests.support.factories import JobFactory
from tests.support.schedules import make

pytestmark = pytest.mark.browser


def test_retry__shows_in_recent_actions_and_the_jobs_history(page: Any) -> None:
    dead = JobFactory(status=JobStatus.DEAD, attempts=3, finished_at=timezone.now(), last_error="KeyError: 'x'")

    page.goto(f"/admin/django_jobs/job/{dead.pk}/change/")
    page.click("button.dj-retry")
    page.wait_for_selector("ul.messagelist")
    assert "retried" in messages(page).lower(), messages(page)

    # The job's own history (on its page) names who retried it.
    history = page.inner_text("table.dj-history")
    assert "retried" in history and "by operator" in history, history

    page.goto("/admin/")
    recent = page.inner_text("#recent-actions-module")
    shot(page, "audit-recent-actions")
    assert f"#{dead.pk} {dead.name}" in recent, recent

    page.goto(f"/admin/django_jobs/job/{dead.pk}/history/")
    table = page.inner_text("#change-history")
    shot(page, "audit-job-history")
    assert "Retried from the admin." in table and "operator" in table, table


def test_schedule__a_missed_schedule_is_flagged_on_its_page_and_in_the_list(page: Any) -> None:
    Schedule.objects.all().delete()  # the example shop's migration seeds one
    schedule = make("*/5 * * * *", name="sync-stock", now=timezone.now() - timedelta(days=1), grace=600)

    page.goto(f"/admin/django_jobs/schedule/{schedule.pk}/change/")
    problems = page.inner_text(".field-attention")
    shot(page, "schedule-missed")
    assert "Missed: no job succeeded within 10 min of its tick" in problems, problems
    assert "no job of it has succeeded yet" in problems

    page.goto("/admin/django_jobs/schedule/")
    assert page.inner_text("tr:has-text('sync-stock') .dj-missed") == "Missed"
