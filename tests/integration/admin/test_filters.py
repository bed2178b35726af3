"""admin/filters.py: the job list's filters by status, queue, name and created date."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs.models import Pause, Worker
from tests.support.admin import DEAD, FAIL, LIST, RECORD, dead
from tests.support.factories import JobFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("only_our_schedules")]


def test_list__filters_by_status_queue_name_and_created_date(client: Client) -> None:
    a = dead(queue="emails")
    b = JobFactory(name=RECORD, queue="emails")
    c = JobFactory(name=RECORD, created_at=timezone.now() - timedelta(days=30))

    def ids(query: str) -> set[int]:
        return {j.pk for j in client.get(f"{LIST}?{query}").context["cl"].result_list}

    assert ids("status__exact=dead") == {a.pk}
    assert ids("queue=emails") == {a.pk, b.pk}
    assert ids(f"name={RECORD}") == {b.pk, c.pk}
    (created,) = [s for s in client.get(LIST).context["cl"].filter_specs if s.title == "created at"]
    (today,) = [
        c for c in created.choices(client.get(LIST).context["cl"]) if c["display"] == "Today"
    ]
    assert ids(today["query_string"].lstrip("?")) == {a.pk, b.pk}


def test_list__queue_and_name_filters_offer_known_values_without_scanning_the_table(
    client: Client,
) -> None:
    JobFactory(queue="from-a-job", name="an.unregistered.name")
    Worker.objects.create(
        worker_id="w", hostname="h", pid=1, queues=["from-a-worker"], concurrency=1
    )
    Pause.objects.pause_queue("from-a-pause")

    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST)

    choices = {
        spec.title: [c["display"] for c in spec.choices(response.context["cl"])]
        for spec in response.context["cl"].filter_specs
    }
    assert {"from-a-job", "from-a-worker", "from-a-pause", "default"} <= set(choices["queue"])
    assert {RECORD, FAIL, "tests.add", "an.unregistered.name"} <= set(choices["job name"])
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]


def test_list__filters_by_flow_control_key_and_searches_the_keys(client: Client) -> None:
    plain = JobFactory(name=RECORD)
    limited = JobFactory(name=RECORD, concurrency_key="account:7", rate_key="tenant:3")
    ordered = JobFactory(name=RECORD, sequence_key="customer:42")
    blocking = dead(sequence_key="customer:42")

    def ids(query: str, url: str = LIST) -> set[int]:
        return {j.pk for j in client.get(f"{url}?{query}").context["cl"].result_list}

    assert ids("flow=sequence") == {ordered.pk, blocking.pk}
    assert ids("flow=concurrency") == ids("flow=rate") == {limited.pk}
    assert plain.pk in ids("flow=none") and not ids("flow=none") & {limited.pk, ordered.pk}
    assert ids("sequence_key=customer:42") == {ordered.pk, blocking.pk}  # a job page's link
    assert ids("q=customer:42") == {ordered.pk, blocking.pk}
    assert ids("q=tenant:3") == {limited.pk}
    # The dead letters filter the same way: a dead job blocks its sequence.
    assert ids("flow=sequence", DEAD) == {blocking.pk}
