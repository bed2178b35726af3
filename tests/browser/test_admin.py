"""The admin in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Against pytest-django's live server, an operator logs in, retries a dead job, stops a queued one,
pauses a queue from the overview page, and saves a schedule with a bad cron to see the error.
Screenshots of each step go to ``screenshots/`` at the repository root (git-ignored).

Playwright only drives the system's Chromium (``executable_path``): ``playwright install`` is never
needed. Without Chromium or Playwright these tests skip, saying why, except under ``CI=true``,
where they fail: CI installs both (``.ci/run`` and the ``test`` extra).
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_jobs.models import JobStatus, Pause, Schedule
from tests.support import REPO
from tests.support.browser import messages, shot
from tests.support.factories import JobFactory

pytestmark = pytest.mark.browser


def test_overview__an_operator_pauses_and_resumes_a_queue(page: Any) -> None:
    JobFactory.create_batch(3, queue="emails")

    page.goto("/admin/")
    page.click("text=Overview")
    page.wait_for_selector("#queues")
    row = page.locator('tr.queue-row[data-queue="emails"]')
    assert row.locator("td").nth(1).inner_text() == "3"  # waiting, then queued
    shot(page, "overview")

    row.locator('input[value="Pause"]').click()

    assert "Paused the queue 'emails'" in messages(page)
    assert Pause.objects.filter(kind="queue", value="emails").exists()
    page.locator('tr.pause-row[data-value="emails"] input[value="Resume"]').click()
    assert "Resumed the queue 'emails'" in messages(page)
    assert not Pause.objects.exists()


def test_schedule__saving_a_bad_cron_shows_what_is_wrong(page: Any) -> None:
    Schedule.objects.all().delete()  # the example shop's migration seeds one

    page.goto("/admin/django_jobs/schedule/add/")
    page.fill("#id_name", "nightly-report")
    page.select_option("#id_job_name", "tests.testapp.jobs.record")
    page.fill("#id_cron", "61 * * * *")
    page.fill("#id_timezone", "UTC")
    page.click("input[name=_save]")

    page.wait_for_selector(".errornote")
    error = page.inner_text(".field-cron .errorlist")
    shot(page, "schedule-bad-cron")
    assert "61" in error
    assert not Schedule.objects.exists()


def test_jobs__an_operator_retries_a_dead_job_and_stops_a_queued_one(page: Any) -> None:
    dead = JobFactory(
        status=JobStatus.DEAD, attempts=3, finished_at=timezone.now(), last_error="KeyError: 'x'"
    )
    queued = JobFactory(queue="emails", run_at=timezone.now() + timedelta(hours=1))

    # A dead job's page has a Retry button.
    page.goto(f"/admin/django_jobs/job/{dead.pk}/change/")
    shot(page, "job-dead")
    page.click("button.dj-retry")
    page.wait_for_selector("ul.messagelist")
    assert "retried" in messages(page).lower(), messages(page)
    dead.refresh_from_db()
    assert dead.status == JobStatus.QUEUED

    # From the list: tick the queued job, "Stop the selected jobs…", confirm.
    page.goto("/admin/django_jobs/job/?status=queued&queue=emails")
    page.check(f'input.action-select[value="{queued.pk}"]')
    page.select_option("select[name=action]", "stop_jobs")
    page.click("button[name=index]")
    page.wait_for_selector("form input[type=submit][value^='Yes']")
    shot(page, "jobs-stop-confirm")
    page.click("form input[type=submit][value^='Yes']")
    page.wait_for_selector("ul.messagelist")
    assert "stopped" in messages(page).lower(), messages(page)
    queued.refresh_from_db()
    assert queued.status == JobStatus.STOPPED
    shot(page, "jobs-after-stop")


# -- the pages of the operator's guide, with docs/screenshots.py's demo data -------------------


def _docs_screenshots() -> Any:
    spec = importlib.util.spec_from_file_location(
        "docs_screenshots", REPO / "docs" / "screenshots.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_operators_pages__show_a_busy_shop(page: Any) -> None:
    """The pages docs/screenshots.py photographs, with its data: they load and show it."""
    jobs = _docs_screenshots().seed(timezone.now())
    dead = jobs["dead"]

    page.goto("/admin/django_jobs/queueoverview/")
    assert "Paused" in page.inner_text('tr.queue-row[data-queue="reports"]')
    assert "shop.sync_stripe_orders" in page.inner_text('tr.worker-row[data-worker="web-1:4242"]')
    page.goto("/admin/django_jobs/job/")
    assert page.locator("#result_list tbody tr").count() == 50
    page.goto(f"/admin/django_jobs/job/{dead.pk}/change/")
    assert "SMTPServerDisconnected" in page.inner_text("#content-main")
    page.goto("/admin/django_jobs/deadletter/")
    assert page.locator("#result_list tbody tr").count() == 6
    shot(page, "dead-letters")
