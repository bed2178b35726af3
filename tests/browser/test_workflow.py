"""A job's workflow on its admin page, in a real browser: the upstream and downstream lists, the
graph drawn server-side, and a click from the graph to an upstream job's page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_jobs.models import Job, JobStatus
from tests.support.browser import shot
from tests.testapp import jobs

pytestmark = pytest.mark.browser


def test_job_page__shows_upstream_downstream_and_a_graph_an_operator_can_follow(page: Any) -> None:
    later = timezone.now() + timedelta(hours=1)
    thumbs = [jobs.step.using(run_at=later).enqueue(f"thumb{size}", size) for size in (100, 400, 800, 1600)]
    Job.objects.filter(pk=thumbs[0].pk).update(status=JobStatus.SUCCEEDED, result=100)
    publish = jobs.total_upstream.using(after=thumbs).enqueue("publish")
    notify = jobs.step.using(after=[publish]).enqueue("notify")

    page.goto(f"/admin/django_jobs/job/{publish.pk}/change/")
    graph = page.locator("svg.dj-workflow-graph")
    graph.wait_for()
    shot(page, "workflow-job-page")

    assert graph.locator("g.dj-node").count() == 6  # four upstream, this job, one downstream
    assert graph.locator("g.dj-node.dj-succeeded").count() == 1
    lists = page.inner_text(".dj-workflow")
    assert "Upstream jobs (it waits on these): 4" in lists
    assert "Downstream jobs (these wait on it): 1" in lists
    assert f"#{notify.pk}" in lists
    assert "Waiting on 3 of 4 upstream jobs" in page.inner_text(".dj-diagnosis")
    box = graph.bounding_box()
    assert box is not None and box["width"] > 300  # drawn, not an empty element

    graph.locator(f"a:has(title:text-matches('#{thumbs[1].pk} '))").click()
    page.wait_for_url(f"**/admin/django_jobs/job/{thumbs[1].pk}/change/")
    assert "Downstream jobs (these wait on it): 1" in page.inner_text(".dj-workflow")
