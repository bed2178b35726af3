"""admin/limits.py: operators set, change and lift limits; the page shows those declared in code."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from django_jobs.models import Limit
from tests.support.admin import RECORD, login, said, text

pytestmark = pytest.mark.django_db

LIST = reverse("admin:django_jobs_limit_changelist")
ADD = reverse("admin:django_jobs_limit_add")


def change(limit: Limit) -> str:
    return reverse("admin:django_jobs_limit_change", args=[limit.pk])


def delete(limit: Limit) -> str:
    return reverse("admin:django_jobs_limit_delete", args=[limit.pk])


def form(**fields: Any) -> dict[str, Any]:
    return {"kind": "queue", "value": "partner-api", "concurrency": "", "rate": "", "note": "", **fields}


def test_add__sets_a_limit_with_a_note_and_who_set_it(client: Client) -> None:
    assert 'list="django-jobs-limitable"' in client.get(ADD).content.decode()

    response = client.post(
        ADD, form(concurrency="4", rate=" 100/m ", note="partner rate-limits us"), follow=True
    )

    limit = Limit.objects.get()
    assert (limit.kind, limit.value, limit.concurrency, limit.rate) == ("queue", "partner-api", 4, "100/m")
    assert (limit.note, limit.changed_by) == ("partner rate-limits us", "admin")
    assert (
        "The queue 'partner-api' is now limited to 4 running at once and 100 starts a minute. "
        "Every worker applies it within a couple of seconds." in said(response)
    )
    listed = text(client.get(LIST))
    assert "partner-api" in listed and "partner rate-limits us" in listed and "admin" in listed


def test_change__replaces_the_values_and_records_the_operator(client: Client) -> None:
    limit = Limit.objects.set("queue", "partner-api", concurrency=4, note="first", changed_by="someone")

    response = client.post(change(limit), form(concurrency="2", rate="5/s", note="still too fast"), follow=True)

    limit.refresh_from_db()
    assert (limit.concurrency, limit.rate, limit.note, limit.changed_by) == (2, "5/s", "still too fast", "admin")
    assert any("is now limited to 2 running at once and 5 starts a second" in m for m in said(response))


def test_add__on_a_job_limited_in_code_says_what_it_replaces_and_that_it_holds_per_key(
    client: Client, limited_jobs: dict[str, Any]
) -> None:
    name = limited_jobs["sync_account"].name

    response = client.post(ADD, form(kind="name", value=name, concurrency="3"), follow=True)

    assert (
        f"The job '{name}' is now limited to 3 running at once per account:{{account_id}}, replacing "
        "@job's concurrency 1. Every worker applies it within a couple of seconds." in said(response)
    )


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"rate": "100 per minute"}, "rate", "rate='100 per minute' isn't a rate; write it as"),
        ({"rate": "0/m"}, "rate", "allows no start at all"),
        ({"concurrency": "0"}, "concurrency", "concurrency=0 would never run a job"),
        ({}, "__all__", "Give a concurrency, a rate, or both (delete the limit to lift it)."),
        ({"value": "a,b", "concurrency": "1"}, "value", "contains a comma"),
    ],
)
def test_add__an_invalid_limit_shows_the_error_on_the_form(
    client: Client, fields: dict[str, Any], field: str, message: str
) -> None:
    response = client.post(ADD, form(**fields))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert any(message in e for e in errors[field]), errors
    assert not Limit.objects.exists()


def test_add__an_unregistered_job_name_suggests_the_registered_one(client: Client) -> None:
    response = client.post(ADD, form(kind="name", value="tests.testapp.jobs.recrod", concurrency="1"))

    assert response.status_code == 200
    (error,) = response.context["adminform"].form.errors["value"]
    assert "No job is registered as 'tests.testapp.jobs.recrod'. Did you mean 'tests.testapp.jobs.record'?" in error
    assert not Limit.objects.exists()


def test_add__a_second_limit_on_the_same_target_is_refused(client: Client) -> None:
    Limit.objects.set("name", RECORD, concurrency=1)

    response = client.post(ADD, form(kind="name", value=RECORD, rate="1/s"))

    assert response.status_code == 200
    assert "already exists" in text(response)
    assert Limit.objects.count() == 1


def test_delete__lifts_the_limit_and_says_what_applies_again(client: Client, limited_jobs: dict[str, Any]) -> None:
    name = limited_jobs["call_partner"].name
    limit = Limit.objects.set("name", name, concurrency=1)
    other = Limit.objects.set("queue", "reports", rate="1/s")

    response = client.post(delete(limit), {"post": "yes"}, follow=True)

    assert list(Limit.objects.all()) == [other]
    assert (
        f"Lifted the operators' limit on the job '{name}': back to @job's limit of 2 running at once. "
        "Every worker applies it within a couple of seconds." in said(response)
    )

    response = client.post(
        LIST, {"action": "delete_selected", "_selected_action": [other.pk], "post": "yes"}, follow=True
    )
    assert not Limit.objects.exists()
    assert any("Lifted the operators' limit on the queue 'reports': back to no limit." in m for m in said(response))


@override_settings(DJANGO_JOBS={"QUEUES": {"partner-api": {"rate": (10, timedelta(seconds=30))}}})
def test_delete__on_a_queue_limited_in_settings_goes_back_to_the_settings_rate(client: Client) -> None:
    limit = Limit.objects.set("queue", "partner-api", rate="1/m")

    response = client.post(delete(limit), {"post": "yes"}, follow=True)

    assert any(
        """back to DJANGO_JOBS["QUEUES"]'s limit of a rate of 10/30s.""" in m for m in said(response)
    ), said(response)


@override_settings(DJANGO_JOBS={"QUEUES": {"partner-api": {"concurrency": 4, "rate": "100/m"}}})
def test_list__shows_the_limits_declared_in_code_and_settings_and_which_operators_replaced(
    client: Client, limited_jobs: dict[str, Any]
) -> None:
    Limit.objects.set("queue", "partner-api", rate="10/m", note="partner outage")

    response = client.get(LIST)

    rows = {(d.kind, d.value): d for d in response.context["declared_limits"]}
    queue = rows[("queue", "partner-api")]
    assert (queue.source_label, queue.concurrency, queue.rate) == ("from settings", "4", "100/m")
    # The operator set a rate only: the concurrency from settings still holds.
    assert (queue.concurrency_by_operator, queue.rate_by_operator) == ("", "10/m")
    sync = rows[("name", limited_jobs["sync_account"].name)]
    assert (sync.source_label, sync.concurrency, sync.concurrency_key) == ("from code", "1", "account:{account_id}")
    assert (sync.rate, sync.rate_key, sync.replaced) == ("5/s", "tenant:{tenant_id}", False)
    bill = rows[("name", limited_jobs["bill_customer"].name)]
    assert bill.sequence.startswith("one at a time, in order, per key customer:{customer_id}")
    page = text(response)
    assert "Declared in settings and in code" in page
    assert "100/m replaced by an operator: 10/m" in page
    assert "1 per key account:{account_id}" in page


@pytest.mark.usefixtures("no_code_limits")
def test_list__says_when_nothing_is_declared(client: Client) -> None:
    assert "No limit is declared" in text(client.get(LIST))


def test_permissions__a_viewer_sees_the_limits_but_changes_nothing() -> None:
    limit = Limit.objects.set("queue", "partner-api", concurrency=4)
    viewer = login("view_limit", name="viewer")

    assert viewer.get(LIST).status_code == 200
    assert viewer.get(ADD).status_code == 403
    assert viewer.post(change(limit), form(concurrency="1")).status_code == 403
    assert viewer.post(delete(limit), {"post": "yes"}).status_code == 403
    assert Limit.objects.get().concurrency == 4


def test_overview__links_to_the_limits_and_shows_each_ones_usage(client: Client, limited_jobs: dict[str, Any]) -> None:
    Limit.objects.set("queue", "partner-api", concurrency=4, note="partner asked")

    response = client.get(reverse("admin:django_jobs_queueoverview_changelist"))

    html = response.content.decode()
    assert f'href="{LIST}"' in html
    rows = {(r["scope"], r["target"]): r for r in response.context["limits"]}
    assert rows[("queue", "partner-api")]["concurrency"] == "0 running, at most 4"
    assert rows[("queue", "partner-api")]["source"] == "an operator"
    assert "an operator: <span class=\"quiet\">partner asked</span>" in html
    sync = rows[("name", limited_jobs["sync_account"].name)]
    assert sync["concurrency"] == "0 running, at most 1 per account:{account_id}"
    assert sync["rate"] == "at most 5/s per tenant:{tenant_id}"
    assert sync["keys"] == "concurrency: 0 with jobs waiting, 0 at the limit; rate: 0 with jobs waiting, 0 at the limit"
    assert rows[("name", limited_jobs["send_digest"].name)]["rate"] == "0 started of 30/m"
