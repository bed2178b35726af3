"""The overview's charts in headless Chromium, after a real worker ran jobs: there, not empty, and
readable in the admin's light and dark themes.

The worker is a real ``runjobs --burst`` subprocess. The minute buckets are then recorded by the
tally service's own function with ``now`` set just after the jobs' minute, rather than by waiting
for the worker's next minute: time is a parameter (and the runs are moved a few minutes back, to
the minutes the page draws).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db.models import F, Max, Min

from django_jobs.db import series
from django_jobs.models import CounterMark, Job, JobStatus
from django_jobs.services.tally import SETTLE, record_samples
from tests.support.browser import shot
from tests.support.factories import JobFactory
from tests.testapp import jobs

pytestmark = [pytest.mark.browser, pytest.mark.subprocess]

FINISHED = 'figure.dj-chart[id$="-finished"]'
BACK = timedelta(minutes=5)


def luminance(css_colour: str) -> float:
    """The relative lightness (0 black, 1 white) of an ``rgb(r, g, b)`` colour."""
    r, g, b = (int(part) for part in css_colour[css_colour.index("(") + 1:-1].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_overview__charts_what_a_worker_ran_in_both_themes(page: Any, worker_process: Any) -> None:
    for n in range(5):
        jobs.record.enqueue(f"chart {n}")
    jobs.fail_fatally.enqueue()
    worker = worker_process("--burst", "--concurrency", "1", "--no-scheduler")
    assert worker.wait(timeout=60) == 0, worker.describe()
    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 5
    # The page draws the minutes recorded in full, which the last one isn't yet: move the runs
    # five minutes back, then record them as the tally service would have a minute later.
    Job.objects.update(started_at=F("started_at") - BACK, finished_at=F("finished_at") - BACK)
    ran = Job.objects.aggregate(first=Min("finished_at"), last=Max("finished_at"))
    then = series.floor_minute(ran["last"]) + timedelta(minutes=1) + SETTLE
    JobFactory.create_batch(2, run_at=then - timedelta(seconds=90))  # a backlog, as it was then
    CounterMark.objects.update_or_create(
        key=series.MARK, defaults={"counted_until": series.floor_minute(ran["first"])}
    )
    done = record_samples("default", now=then)
    assert done.minute_rows

    page.goto("/admin/django_jobs/queueoverview/")
    page.wait_for_selector(FINISHED)

    finished = page.locator(FINISHED).first
    assert finished.get_attribute("data-empty") == "false"
    assert finished.locator("svg polyline, svg circle").count() >= 2  # succeeded and dead drawn
    description = finished.locator("svg desc").text_content()
    assert "Succeeded: 5 in all" in description and "Dead (failed): 1 in all" in description
    depth = page.locator('figure.dj-chart[id$="-depth"] svg desc').first.text_content()
    assert " to 2 " in depth, depth
    # The numbers as a table, behind "Numbers".
    finished.locator("summary").click()
    assert finished.locator("table.dj-chart-table tbody tr").count() == 60
    shot(page, "overview-charts")

    light = finished.locator("svg text").first.evaluate("e => getComputedStyle(e).fill")
    page.emulate_media(color_scheme="dark")
    page.reload()
    page.wait_for_selector(FINISHED)
    dark = page.locator(FINISHED).first.locator("svg text").first.evaluate("e => getComputedStyle(e).fill")
    line = page.locator(f"{FINISHED} .dj-line-succeeded polyline, {FINISHED} .dj-line-succeeded circle").first
    stroke = line.evaluate("e => getComputedStyle(e).stroke + '|' + getComputedStyle(e).fill")
    shot(page, "overview-charts-dark")

    assert luminance(light) < 0.5 < luminance(dark), (light, dark)  # text follows the theme
    assert "rgb(102, 187, 106)" in stroke, stroke  # the dark theme's green
