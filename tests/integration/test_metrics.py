"""metrics.py: who may read the metrics, and what the Prometheus text says."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from django_jobs.metrics import render
from django_jobs.models import FinishedCounter, JobStatus, Limit, Pause, Schedule, Start, Worker
from django_jobs.services import tally as counters
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db

URL = "/jobs/metrics"
TOKEN = "t" * 40
SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')


def families(text: str) -> dict[str, dict[str, float]]:
    """{metric name: {label text: value}} from Prometheus text, checking every line's shape."""
    result: dict[str, dict[str, float]] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP "):
            continue
        assert SAMPLE.match(line), f"not a Prometheus sample: {line!r}"
        name, _, rest = (
            line.partition("{") if "{" in line.split(" ")[0] else (line.split(" ")[0], "", "")
        )
        assert name in typed, f"{name} has no # TYPE line before its samples"
        labels = rest.rsplit("}", 1)[0] if rest else ""
        result.setdefault(name, {})[labels] = float(line.rsplit(" ", 1)[1])
    return result


def test_reverse__the_url_users_include() -> None:
    assert reverse("django_jobs:metrics") == URL


def test_metrics__refuses_an_anonymous_reader(client: Client) -> None:
    response = client.get(URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"METRICS_TOKEN" in response.content


def test_metrics__a_bearer_of_the_token_may_read(client: Client, settings: Any) -> None:
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "METRICS_TOKEN": TOKEN}

    ok = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    wrong = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}x")
    scheme = client.get(URL, HTTP_AUTHORIZATION=f"Basic {TOKEN}")

    assert ok.status_code == 200
    assert ok["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert ok["Cache-Control"] == "no-store"
    assert (wrong.status_code, scheme.status_code) == (401, 401)


def test_metrics__a_token_read_from_a_file_with_its_newline_still_matches(
    client: Client, settings: Any
) -> None:
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "METRICS_TOKEN": f"{TOKEN}\n"}

    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN[:-1]}").status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer \n").status_code == 401


def test_metrics__a_token_of_whitespace_lets_no_bearer_in(client: Client, settings: Any) -> None:
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "METRICS_TOKEN": " \n"}

    assert client.get(URL, HTTP_AUTHORIZATION="Bearer  ").status_code == 401


def test_metrics__no_token_configured_means_no_bearer_gets_in(client: Client) -> None:
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer None").status_code == 401


def test_metrics__staff_allowed_the_overview_may_read(client: Client) -> None:
    user = User.objects.create_user("operator", is_staff=True)
    client.force_login(user)
    assert client.get(URL).status_code == 401

    user.user_permissions.add(Permission.objects.get(codename="view_queueoverview"))
    client.force_login(User.objects.get(pk=user.pk))  # a fresh user: permissions are cached
    assert client.get(URL).status_code == 200


def test_metrics__a_logged_in_user_who_isnt_staff_may_not(client: Client) -> None:
    client.force_login(User.objects.create_user("customer"))

    assert client.get(URL).status_code == 401


def test_metrics__only_get(admin_client: Client) -> None:
    assert admin_client.post(URL).status_code == 405
    assert admin_client.head(URL).status_code == 200


def test_render__queue_gauges_and_lag() -> None:
    now = timezone.now()
    JobFactory.create_batch(2, queue="emails", run_at=now - timedelta(seconds=90))
    JobFactory(queue="emails", status=JobStatus.RUNNING, worker_id="w")
    JobFactory(queue="emails", run_at=now + timedelta(hours=1))

    metrics = families(render("default", now=now))

    jobs = metrics["django_jobs_jobs"]
    assert jobs['queue="emails",status="queued"'] == 3
    assert jobs['queue="emails",status="running"'] == 1
    assert jobs['queue="emails",status="retrying"'] == 0
    assert metrics["django_jobs_ready_jobs"]['queue="emails"'] == 2
    assert metrics["django_jobs_oldest_ready_age_seconds"]['queue="emails"'] == 90
    assert metrics["django_jobs_oldest_ready_age_seconds"]['queue="default"'] == 0


def test_render__finished_counters_with_zeros_for_every_registered_job() -> None:
    FinishedCounter.objects.create(queue="emails", name="shop.mail", status="dead", count=7)
    counters.tally("default", now=timezone.now())

    metrics = families(render("default", now=timezone.now()))

    finished = metrics["django_jobs_finished_total"]
    assert finished['queue="emails",name="shop.mail",status="dead"'] == 7
    assert finished['queue="emails",name="shop.mail",status="succeeded"'] == 0
    # A registered job that never finished has its series at 0, so its first death is an increase.
    assert finished['queue="default",name="tests.testapp.jobs.fail_fatally",status="dead"'] == 0
    until = metrics["django_jobs_finished_counted_until_timestamp_seconds"][""]
    assert abs(until - (timezone.now() - counters.SETTLE).timestamp()) < 60


def test_render__workers_and_pauses() -> None:
    now = timezone.now()
    Worker.objects.create(
        worker_id="a", hostname="h", pid=1, concurrency=4, running=[1, 2], last_heartbeat=now
    )
    Worker.objects.create(
        worker_id="b",
        hostname="h",
        pid=2,
        concurrency=2,
        running=[3],
        last_heartbeat=now - timedelta(hours=1),
    )  # silent: not counted
    Pause.objects.pause_queue("emails")
    Pause.objects.create(kind=Pause.Kind.NAME, value='odd"name')  # e.g. from an earlier deploy

    metrics = families(render("default", now=now))

    assert metrics["django_jobs_workers"][""] == 1
    assert metrics["django_jobs_worker_slots"][""] == 4
    assert metrics["django_jobs_worker_busy_slots"][""] == 2
    paused = metrics["django_jobs_paused_since_timestamp_seconds"]
    assert set(paused) == {'kind="queue",value="emails"', 'kind="name",value="odd\\"name"'}


def test_render__schedules_that_fail_or_name_an_unregistered_job() -> None:
    def schedule(name: str, **fields: Any) -> Schedule:
        fields.setdefault("job_name", "tests.testapp.jobs.record")
        return Schedule.objects.create(name=name, cron="0 * * * *", timezone="UTC", **fields)

    schedule("failing", last_error="ValueError: the receiver is broken")
    schedule("unknown", job_name="gone.jobs.report")
    schedule("both", job_name="gone.jobs.report", last_error="DataError: out of range")
    schedule("fine")
    schedule("disabled", job_name="gone.jobs.report", enabled=False, last_error="old news")

    metrics = families(render("default", now=timezone.now()))

    problems = {k for k in metrics["django_jobs_schedule_problem"] if "gone" in k or "failing" in k}
    assert problems == {
        'schedule="failing",job="tests.testapp.jobs.record",problem="failing"',
        'schedule="unknown",job="gone.jobs.report",problem="unregistered"',
        'schedule="both",job="gone.jobs.report",problem="unregistered"',
        'schedule="both",job="gone.jobs.report",problem="failing"',
    }


@override_settings(DJANGO_JOBS={"QUEUES": {"partner-api": {"concurrency": 4, "rate": "100/m"}}})
def test_render__each_limits_usage(limited_jobs: dict[str, Any]) -> None:
    now = timezone.now()
    sync = limited_jobs["sync_account"].name
    JobFactory.create_batch(3, queue="partner-api", status=JobStatus.RUNNING)
    Start.objects.create(key="queue:partner-api", started_at=now - timedelta(seconds=10))
    JobFactory(name=sync, concurrency_key="account:1", rate_key="tenant:1", status=JobStatus.RUNNING)
    due = now - timedelta(seconds=1)
    JobFactory(name=sync, concurrency_key="account:1", rate_key="tenant:1", run_at=due)
    JobFactory(name=sync, concurrency_key="account:2", rate_key="tenant:1", run_at=due)
    Limit.objects.set("name", limited_jobs["call_partner"].name, concurrency=1, note="partner asked")

    metrics = families(render("default", now=now))

    queue = 'scope="queue",target="partner-api"'
    partner = f'scope="name",target="{limited_jobs["call_partner"].name}"'
    assert metrics["django_jobs_limit_concurrency"][queue] == 4
    assert metrics["django_jobs_limit_concurrency"][partner] == 1  # the operator's, over code's 2
    assert metrics["django_jobs_limit_running"][queue] == 3
    assert metrics["django_jobs_limit_rate"][queue] == 100
    assert metrics["django_jobs_limit_rate_period_seconds"][queue] == 60
    assert metrics["django_jobs_limit_rate_starts"][queue] == 1
    keyed = f'scope="name",target="{sync}"'
    assert metrics["django_jobs_limit_running"][keyed] == 1
    assert keyed not in metrics["django_jobs_limit_rate_starts"]  # a rate per key has no one window
    assert metrics["django_jobs_limit_keys_waiting"][keyed + ',limit="concurrency"'] == 2
    assert metrics["django_jobs_limit_keys_at_limit"][keyed + ',limit="concurrency"'] == 1
    assert metrics["django_jobs_limit_keys_waiting"][keyed + ',limit="rate"'] == 1
    assert metrics["django_jobs_limit_keys_at_limit"][keyed + ',limit="rate"'] == 0


@pytest.mark.usefixtures("no_code_limits")
def test_render__no_limit_series_while_nothing_is_limited() -> None:
    metrics = families(render("default", now=timezone.now()))

    assert not any(name.startswith("django_jobs_limit_") for name in metrics)
