"""admin/workflow.py: a job's page lists its upstream and downstream jobs, draws a graph past a
few, and the verbs act on waiting jobs (cascading downstream)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from django_jobs.models import Job, JobStatus
from tests.support.admin import LIST, buttons, change_url, do_url, said, status, text
from tests.testapp import jobs

pytestmark = pytest.mark.django_db


def later() -> timezone.datetime:
    return timezone.now() + timedelta(hours=1)


def test_page__lists_upstream_and_downstream_jobs_with_their_statuses(client: Client) -> None:
    upstream = jobs.step.using(run_at=later()).enqueue("up")
    middle = jobs.step.using(after=[upstream]).enqueue("middle")
    downstream = jobs.step.using(after=[middle]).enqueue("down")

    page = client.get(change_url(middle))
    body = page.content.decode()

    assert "Upstream jobs (it waits on these): 1" in text(page)
    assert "Downstream jobs (these wait on it): 1" in text(page)
    assert f'href="{change_url(upstream)}">#{upstream.pk}</a>' in body
    assert f'href="{change_url(downstream)}">#{downstream.pk}</a>' in body
    assert '<span class="dj-badge dj-queued">Queued</span>' in body
    assert '<span class="dj-badge dj-waiting">Waiting</span>' in body
    assert "dj-workflow-graph" not in body  # a few: the lists say it all
    assert f"Waiting on 1 of 1 upstream job: #{upstream.pk} (queued, due in" in text(page)


def test_page__draws_a_graph_server_side_past_a_few_jobs(client: Client) -> None:
    parts = jobs.step.enqueue_many([[f"p{n}"] for n in range(12)])
    Job.objects.filter(pk__in=[p.pk for p in parts[:4]]).update(status=JobStatus.SUCCEEDED)
    (total,) = jobs.total_upstream.enqueue_many([["total"]], after=parts)

    body = client.get(change_url(total)).content.decode()

    (svg,) = re.findall(r"<svg class=\"dj-workflow-graph\".*?</svg>", body, re.S)
    assert "<script" not in body.split("dj-workflow")[1]
    assert "4 succeeded" in svg and "8 waiting" not in svg and "8 queued" in svg  # one box per status
    assert f"#{total.pk} (this job)" in svg
    assert "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    assert svg.count("<line") == 2


def test_page__a_job_outside_any_workflow_has_no_workflow_section(client: Client) -> None:
    plain = jobs.step.enqueue("plain")

    assert "Upstream jobs" not in text(client.get(change_url(plain)))


def test_list__filters_on_waiting(client: Client) -> None:
    upstream = jobs.step.using(run_at=later()).enqueue("up")
    waiting = jobs.step.using(after=[upstream]).enqueue("waiting")

    response = client.get(LIST, {"status__exact": "waiting"})

    assert [j.pk for j in response.context["cl"].result_list] == [waiting.pk]


def test_page__a_waiting_job_offers_stop_and_dead_letter_not_retry(client: Client) -> None:
    upstream = jobs.step.using(run_at=later()).enqueue("up")
    waiting = jobs.step.using(after=[upstream]).enqueue("waiting")

    assert set(buttons(client.get(change_url(waiting)))) == {"stop", "dead-letter"}


def test_stop__a_waiting_job_from_its_page_cascades_downstream(client: Client) -> None:
    upstream = jobs.step.using(run_at=later()).enqueue("up")
    waiting = jobs.step.using(after=[upstream]).enqueue("waiting")
    downstream = jobs.step.using(after=[waiting]).enqueue("down")

    response = client.post(do_url(waiting, "stop"), follow=True)

    assert said(response) == [f"Job #{waiting.pk} stopped."]
    assert (status(waiting), status(downstream), status(upstream)) == ("stopped", "stopped", "queued")


def test_dead_letter__a_waiting_job_from_its_page(client: Client) -> None:
    upstream = jobs.step.using(run_at=later()).enqueue("up")
    waiting = jobs.step.using(after=[upstream]).enqueue("waiting")
    downstream = jobs.step.using(after=[waiting]).enqueue("down")

    client.post(do_url(waiting, "dead-letter"), {"note": "not needed"}, follow=True)

    assert (status(waiting), status(downstream)) == ("dead", "stopped")
    assert Job.objects.get(pk=downstream.pk).last_error == f"upstream job #{waiting.pk} ended dead"
