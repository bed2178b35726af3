"""The limits' page in a real browser: an operator limits a queue at 3 a.m. and lifts it after.

From the overview, the operator opens the limits, sets a concurrency and a rate on a queue with a
note, sees it listed (and on the overview), edits it, and deletes it. Screenshots go to
``screenshots/`` (see tests/browser/conftest.py for the browser and the logged-in tab).
"""

from __future__ import annotations

from typing import Any

import pytest

from django_jobs.models import Limit
from tests.support.browser import messages, shot
from tests.support.factories import JobFactory

pytestmark = pytest.mark.browser


def test_limits__an_operator_sets_edits_and_lifts_a_queues_limit(page: Any) -> None:
    JobFactory.create_batch(2, queue="partner-api")

    # From the overview to the limits' page, and its add form.
    page.goto("/admin/django_jobs/queueoverview/")
    page.click("text=Set, change or lift a limit")
    page.wait_for_selector("#declared-limits")
    page.click(".object-tools a.addlink")
    page.select_option("#id_kind", "queue")
    page.fill("#id_value", "partner-api")
    page.fill("#id_concurrency", "2")
    page.fill("#id_rate", "60/m")
    page.fill("#id_note", "Partner API answers 429s; INC-4411")
    shot(page, "limit-add")
    page.click("input[name=_save]")

    page.wait_for_selector("ul.messagelist")
    assert "The queue 'partner-api' is now limited to 2 running at once and 60 starts a minute" in messages(page)
    row = page.locator("#result_list tbody tr", has_text="partner-api")
    assert "Partner API answers 429s; INC-4411" in row.inner_text()
    assert "operator" in row.inner_text()  # who set it
    shot(page, "limits")
    limit = Limit.objects.get()
    assert (limit.concurrency, limit.rate, limit.changed_by) == (2, "60/m", "operator")

    # The overview shows it, and who set it.
    page.goto("/admin/django_jobs/queueoverview/")
    overview_row = page.locator('tr.limit-row[data-scope="queue"][data-target="partner-api"]')
    assert "at most 2" in overview_row.inner_text() and "an operator" in overview_row.inner_text()
    shot(page, "overview-limits")

    # Edit: a tighter rate, no concurrency limit any more.
    page.goto("/admin/django_jobs/limit/")
    page.click("#result_list tbody tr a:has-text('partner-api')")
    page.fill("#id_concurrency", "")
    page.fill("#id_rate", "10/m")
    page.fill("#id_note", "Still 429s at 60/m; INC-4411")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    assert "now limited to 10 starts a minute" in messages(page)
    limit.refresh_from_db()
    assert (limit.concurrency, limit.rate, limit.note) == (None, "10/m", "Still 429s at 60/m; INC-4411")

    # A rate the form can't read is refused, saying how to write one.
    page.click("#result_list tbody tr a:has-text('partner-api')")
    page.fill("#id_rate", "10 a minute")
    page.click("input[name=_save]")
    page.wait_for_selector(".errornote")
    assert "isn't a rate" in page.inner_text(".field-rate .errorlist")
    shot(page, "limit-bad-rate")

    # Lift it: delete, confirm.
    page.click("a.deletelink")
    page.click("input[type=submit]")
    page.wait_for_selector("ul.messagelist")
    assert "Lifted the operators' limit on the queue 'partner-api': back to no limit" in messages(page)
    assert not Limit.objects.exists()
