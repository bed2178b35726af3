"""The admin's pages at an operator's screen size (1400 × 900): what they look for first is in view.

With docs/screenshots.py's busy shop: on the job list, the last-error column fits the window
(no horizontal scrolling to find why jobs fail); on a dead job's page, the error and the top of
its traceback are above the fold.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from django.utils import timezone

from tests.support import REPO
from tests.support.browser import shot

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1400, 900


def _seed() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("docs_screenshots", REPO / "docs" / "screenshots.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    jobs: dict[str, Any] = module.seed(timezone.now())
    return jobs


def test_job_list__the_last_error_column_fits_a_1400_px_window(page: Any) -> None:
    _seed()
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})

    page.goto("/admin/django_jobs/job/")
    page.wait_for_selector("#result_list")
    shot(page, "layout-job-list-1400")

    # The list scrolls sideways inside its box when it is wider: what is past the box's right
    # edge can't be seen without scrolling.
    shown = page.locator("#changelist .results").bounding_box()
    assert shown is not None and shown["x"] + shown["width"] <= WIDTH
    right = shown["x"] + shown["width"]
    for column in ("column-name", "column-status_badge", "column-error", "column-attempts_column"):
        box = page.locator(f"#result_list thead th.{column}").bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= right, f"{column} ends at {box['x'] + box['width']:.0f} px, past {right:.0f}"
    errors = page.locator("#result_list tbody td.field-error span")
    assert errors.count() == 7  # the dead and retrying jobs on the first page
    assert errors.first.get_attribute("title").startswith("SMTPServerDisconnected: ")


def test_job_page__a_dead_jobs_error_and_traceback_are_above_the_fold(page: Any) -> None:
    dead = _seed()["dead"]
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})

    page.goto(f"/admin/django_jobs/job/{dead.pk}/change/")
    page.wait_for_selector("#content-main")
    shot(page, "layout-job-dead-1400")

    error = page.locator("pre.dj-error").first.bounding_box()
    traceback = page.locator("pre.dj-traceback").first
    assert traceback.is_visible()
    box = traceback.bounding_box()
    assert error is not None and box is not None
    assert error["y"] < HEIGHT, f"the error starts at {error['y']:.0f} px"
    assert box["y"] + 100 <= HEIGHT, f"the traceback starts at {box['y']:.0f} px, below the fold"
    assert "SMTPServerDisconnected" in traceback.inner_text()
