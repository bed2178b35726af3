"""admin/verbs.py: the operator's verbs on one job (its page's buttons), on a selection (the
changelist actions) and on every job matching a filter."""

from __future__ import annotations

import html
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs import models
from django_jobs.models import Job
from tests.support.admin import (
    FAIL,
    LIST,
    RECORD,
    act,
    bulk_url,
    buttons,
    change_url,
    dead,
    do_url,
    impact,
    said,
    status,
    text,
)
from tests.support.factories import JobFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("only_our_schedules")]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": "queued"}, ["stop", "dead-letter"]),
        ({"status": "retrying"}, ["retry", "stop", "dead-letter"]),
        ({"status": "running"}, ["stop"]),
        ({"status": "running", "stop_requested_at": timezone.now()}, []),
        ({"status": "stopped"}, ["retry", "dead-letter"]),
        ({"status": "dead"}, ["retry"]),
        ({"status": "succeeded"}, []),
    ],
)
def test_buttons__only_those_the_jobs_status_allows(
    client: Client, fields: dict[str, Any], expected: list[str]
) -> None:
    assert buttons(client.get(change_url(JobFactory(**fields)))) == expected


def test_button_retry__queues_a_dead_job_now_keeping_its_history(client: Client) -> None:
    job = dead(
        history=[{"attempt": 3, "outcome": "failed"}], run_at=timezone.now() - timedelta(days=1)
    )

    response = client.post(do_url(job, "retry"), follow=True)

    assert said(response) == [f"Job #{job.pk} retried."]
    job.refresh_from_db()
    assert (job.status, job.history[0], job.max_attempts) == (
        "queued",
        {"attempt": 3, "outcome": "failed"},
        6,
    )
    # The history is kept, and says who retried it.
    assert [(e["event"], e["by"]) for e in job.history[1:]] == [("retried", "admin")]
    assert timezone.now() - job.run_at < timedelta(minutes=1)
    assert response.redirect_chain[-1][0] == change_url(job)


def test_button_retry__on_a_running_job_says_why_nothing_happened(client: Client) -> None:
    job = JobFactory(status="running")

    assert said(client.post(do_url(job, "retry"), follow=True)) == [
        f"Job #{job.pk} not retried: it is running."
    ]
    assert status(job) == "running"


def test_buttons__act_on_post_only(client: Client) -> None:
    job = dead()

    assert client.get(do_url(job, "retry")).status_code == 405
    assert client.get(do_url(job, "stop")).status_code == 405
    assert status(job) == "dead"


def test_button_stop__ends_a_queued_job_and_asks_a_running_one(client: Client) -> None:
    queued, running = JobFactory(), JobFactory(status="running")

    assert said(client.post(do_url(queued, "stop"), follow=True)) == [f"Job #{queued.pk} stopped."]
    assert said(client.post(do_url(running, "stop"), follow=True)) == [
        f"Job #{running.pk} asked to stop."
    ]

    queued.refresh_from_db()
    assert (queued.status, queued.last_error) == ("stopped", "stopped by admin in the admin")
    assert Job.objects.get(pk=running.pk).stop_requested_at is not None


def test_button_dead_letter__asks_for_a_note_then_dead_letters(client: Client) -> None:
    job = JobFactory(status="retrying")

    form = client.get(do_url(job, "dead-letter"))
    assert form.status_code == 200 and 'name="note"' in form.content.decode()
    assert "1 of 1 job will be dead-lettered; 0 skipped." in text(form)
    assert status(job) == "retrying"

    response = client.post(
        do_url(job, "dead-letter"), {"note": "partner closed the account"}, follow=True
    )

    assert said(response) == [f"Job #{job.pk} dead-lettered."]
    job.refresh_from_db()
    assert (job.status, job.last_error) == (
        "dead",
        "dead-lettered by an operator: partner closed the account",
    )
    assert job.history[-1]["note"] == "partner closed the account"


def test_delete__through_djangos_confirmation_page(client: Client) -> None:
    job = dead()
    url = reverse("admin:django_jobs_job_delete", args=[job.pk])

    assert "Are you sure" in text(client.get(url))
    assert Job.objects.exists()
    client.post(url, {"post": "yes"})
    assert not Job.objects.exists()


def test_action_retry__confirms_with_counts_then_reports_what_it_skipped(client: Client) -> None:
    jobs = [
        dead(),
        dead(),
        JobFactory(name=RECORD, status="stopped"),
        JobFactory(name=RECORD, status="running"),
    ]

    confirm = act(client, "retry_jobs", jobs, index=0)

    assert impact(confirm) == [
        (FAIL, "dead", 2, "retried"),
        (RECORD, "running", 1, "skipped: it is running"),
        (RECORD, "stopped", 1, "retried"),
    ]
    assert "3 of 4 jobs will be retried; 1 skipped." in text(confirm)
    assert [status(j) for j in jobs] == ["dead", "dead", "stopped", "running"]

    done = act(client, "retry_jobs", jobs, confirm="yes")

    assert said(done) == ["3 jobs retried; 1 skipped: it is running."]
    assert [status(j) for j in jobs] == ["queued", "queued", "queued", "running"]


def test_action_retry__skip_reasons_are_counted_by_status(client: Client) -> None:
    jobs = [
        dead(),
        JobFactory(status="running"),
        JobFactory(status="running"),
        JobFactory(finished=True),
    ]

    assert said(act(client, "retry_jobs", jobs, confirm="yes")) == [
        "1 job retried; 2 skipped: they are running; 1 skipped: it succeeded."
    ]


def test_action_stop__stops_waiting_jobs_asks_running_ones_and_skips_finished(
    client: Client,
) -> None:
    jobs = [JobFactory(), JobFactory(status="retrying"), JobFactory(status="running"), dead()]

    assert said(act(client, "stop_jobs", jobs, confirm="yes")) == [
        "2 jobs stopped; 1 running job asked to stop; 1 skipped: it is dead."
    ]
    assert [status(j) for j in jobs] == ["stopped", "stopped", "running", "dead"]


def test_action_dead_letter__takes_the_note_from_the_confirmation_page(client: Client) -> None:
    jobs = [JobFactory(), JobFactory(status="stopped"), JobFactory(status="running")]

    confirm = act(client, "dead_letter_jobs", jobs, index=0)
    assert 'name="note"' in confirm.content.decode()

    done = act(client, "dead_letter_jobs", jobs, confirm="yes", note="duplicate import")

    assert said(done) == ["2 jobs dead-lettered; 1 skipped: it is running: stop it first."]
    assert {Job.objects.get(pk=j.pk).last_error for j in jobs[:2]} == {
        "dead-lettered by an operator: duplicate import"
    }


def test_action_delete__uses_djangos_confirmation(client: Client) -> None:
    jobs = [dead(), dead()]

    assert "Are you sure" in text(act(client, "delete_selected", jobs, index=0))
    act(client, "delete_selected", jobs, post="yes")
    assert not Job.objects.exists()


def test_action__select_all_goes_to_the_page_for_every_matching_job(client: Client) -> None:
    jobs = [dead(), dead()]

    response = client.post(
        f"{LIST}?status__exact=dead",
        {
            "action": "retry_jobs",
            "_selected_action": [j.pk for j in jobs],
            "select_across": "1",
            "index": 0,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == bulk_url("retry", "status__exact=dead")


def test_list__offers_to_act_on_every_matching_job_with_the_current_filters(client: Client) -> None:
    page = client.get(f"{LIST}?status__exact=dead&q=boom&p=2&o=1").content.decode()

    assert (
        f'href="{html.escape(bulk_url("retry", "status__exact=dead&amp;q=boom"), quote=False)}"'
        in page
        or f'href="{bulk_url("retry", "status__exact=dead&q=boom").replace("&", "&amp;")}"' in page
    )


def test_retry_all_matching__counts_the_matches_then_retries_them_in_batches(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "TRANSITION_BATCH", 2)
    matching = [dead() for _ in range(5)]
    running = JobFactory(name=FAIL, status="running")
    other_name = dead(name=RECORD)
    query = f"name={FAIL}"

    confirm = client.get(bulk_url("retry", query))

    assert impact(confirm) == [
        (FAIL, "dead", 5, "retried"),
        (FAIL, "running", 1, "skipped: it is running"),
    ]
    assert "5 of 6 jobs will be retried; 1 skipped." in text(confirm)
    assert "name = " + FAIL in text(confirm)

    done = client.post(bulk_url("retry", query), follow=True)

    assert said(done) == ["5 jobs retried; 1 skipped: it is running."]
    assert [status(j) for j in matching] == ["queued"] * 5
    assert (status(running), status(other_name)) == ("running", "dead")
    assert done.redirect_chain[-1][0] == f"{LIST}?{query}"


def test_stop_all_matching__a_search_narrows_it(client: Client) -> None:
    a = JobFactory(name=RECORD, unique_key="batch-7-a")
    b = JobFactory(name=RECORD, unique_key="batch-7-b")
    c = JobFactory(name=RECORD, unique_key="batch-8-a")

    response = client.post(bulk_url("stop", "q=batch-7"), follow=True)

    assert said(response) == ["2 jobs stopped."]
    assert [status(j) for j in (a, b, c)] == ["stopped", "stopped", "queued"]


def test_dead_letter_all_matching__needs_no_note_but_takes_one(client: Client) -> None:
    job = JobFactory(queue="imports")

    assert 'name="note"' in client.get(bulk_url("dead-letter", "queue=imports")).content.decode()
    client.post(bulk_url("dead-letter", "queue=imports"), {"note": ""})

    assert Job.objects.get(pk=job.pk).last_error == "dead-lettered"
