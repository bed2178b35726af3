"""The shop's nightly Stripe sync against the fake Stripe server, through the real stripe SDK.

Time is injected: each run gets ``now=`` and the fake's invoices are created at fixed moments
around it, so nothing here depends on the wall clock. Retry behaviour runs through a real
(in-process, burst) worker, so the job's statuses, backoff and history are the real ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import stripe
from django.apps import apps
from django.db import connection

from django_jobs import cron
from django_jobs.models import Job, JobStatus, Schedule
from example_project.shop import sync
from example_project.shop.fake_stripe import FakeStripe
from example_project.shop.jobs import StripeNotConfigured, order_email_key, sync_stripe_orders
from example_project.shop.models import Order, SyncCursor
from example_project.shop.stripe_api import stripe_client

KEY = "sk_test_fake_shop_sync"
T0 = datetime(2026, 1, 10, 0, 5, tzinfo=UTC)  # night 1 of the tests
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def cursor() -> datetime | None:
    row = SyncCursor.objects.filter(name=sync.CURSOR_NAME).first()
    return row.synced_until if row else None


def counts(result: dict[str, Any]) -> tuple[int, ...]:
    """(fetched, created, updated, unchanged) of a sync's result."""
    return tuple(result[key] for key in ("fetched", "created", "updated", "unchanged"))


def email_jobs() -> list[Job]:
    return list(Job.objects.filter(name="shop.send_order_email").order_by("id"))


@pytest.fixture
def fake(settings: Any) -> Iterator[FakeStripe]:
    """A fake Stripe the settings point at; the SDK's own retries off, so failures show."""
    with FakeStripe(api_key=KEY) as server:
        settings.STRIPE_API_KEY = KEY
        settings.STRIPE_API_BASE = server.url
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        yield server


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    # Set before the worker forks, so its job processes page by two as well.
    monkeypatch.setattr(sync, "PAGE_SIZE", 2)
    return 2


# -- what a run does -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_first_run__creates_an_order_per_invoice_and_enqueues_its_email(fake: FakeStripe) -> None:
    first = fake.add_invoice(created=ts(T0 - 5 * HOUR), total=1999, currency="EUR",
                             customer_email="ada@example.com", customer_name="Ada Lovelace",
                             number="SHOP-0001", status="paid")
    fake.add_invoice(created=ts(T0 - 4 * HOUR))
    fake.add_invoice(created=ts(T0 - 3 * HOUR), status="open")
    fake.add_invoice(created=ts(T0 + HOUR))  # after `now`: the next night's

    result = sync_stripe_orders(now=T0.isoformat())

    assert counts(result) == (3, 3, 0, 0)
    assert result["since"] is None and result["until"] == T0.isoformat()
    order = Order.objects.get(stripe_invoice_id=first["id"])
    assert (order.number, order.customer_email, order.customer_name) == (
        "SHOP-0001", "ada@example.com", "Ada Lovelace")
    assert (order.total, order.currency, order.status) == (1999, "eur", "paid")
    assert order.stripe_created_at == T0 - 5 * HOUR and order.emailed_at is None
    orders = Order.objects.all()
    assert [job.kwargs for job in email_jobs()] == [
        {"order_id": o.pk} for o in orders.order_by("id")]
    assert {job.unique_key for job in email_jobs()} == {order_email_key(o.pk) for o in orders}
    assert cursor() == T0


@pytest.mark.django_db
def test_second_run__updates_the_changed_invoice_and_creates_the_new_one_only(
    fake: FakeStripe,
) -> None:
    changed = fake.add_invoice(created=ts(T0 - 2 * HOUR), status="open", total=5000)
    same = fake.add_invoice(created=ts(T0 - HOUR))
    sync_stripe_orders(now=T0.isoformat())
    untouched_at = Order.objects.get(stripe_invoice_id=same["id"]).updated_at

    fake.update_invoice(changed["id"], status="paid", total=4500)
    new = fake.add_invoice(created=ts(T0 + 12 * HOUR))
    result = sync_stripe_orders(now=(T0 + DAY).isoformat())

    assert counts(result) == (3, 1, 1, 1)
    order = Order.objects.get(stripe_invoice_id=changed["id"])
    assert (order.status, order.total) == ("paid", 4500)
    assert Order.objects.get(stripe_invoice_id=same["id"]).updated_at == untouched_at
    assert Order.objects.filter(stripe_invoice_id=new["id"]).exists()
    # One email job per order, the new one's included, none for the update.
    assert sorted(job.kwargs["order_id"] for job in email_jobs()) == sorted(
        Order.objects.values_list("pk", flat=True))
    assert cursor() == T0 + DAY


@pytest.mark.django_db
def test_pages__every_page_is_read_and_progress_reported(
    fake: FakeStripe, small_pages: int
) -> None:
    for hour in range(5, 0, -1):
        fake.add_invoice(created=ts(T0 - hour * HOUR))
    SyncCursor.objects.create(name=sync.CURSOR_NAME, synced_until=T0 - DAY)
    reports: list[tuple[float | None, str]] = []

    result = sync.sync_invoices(stripe_client(), now=T0, overlap=HOUR,
                                progress=lambda *report: reports.append(report))

    assert result["fetched"] == result["created"] == Order.objects.count() == 5
    pages = [r.query for r in fake.requests]
    assert [q.get("starting_after") for q in pages] == [None, "in_fake000004", "in_fake000002"]
    assert all(q["limit"] == "2" and q["created[gte]"] == str(ts(T0 - DAY - HOUR)) for q in pages)
    assert [message for _, message in reports] == [
        "page 1: 2 invoices, 2 new orders", "page 2: 4 invoices, 4 new orders",
        "page 3: 5 invoices, 5 new orders"]
    percents = [percent for percent, _ in reports]
    assert percents == sorted(percents) and 0 < percents[0] < percents[-1] <= 100


@pytest.mark.django_db
def test_first_run__reports_progress_without_a_percentage(fake: FakeStripe) -> None:
    fake.add_invoice(created=ts(T0 - HOUR))
    reports: list[tuple[float | None, str]] = []
    sync.sync_invoices(stripe_client(), now=T0, progress=lambda *report: reports.append(report))
    assert reports == [(None, "page 1: 1 invoices, 1 new orders")]


# -- time: the cursor ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_missed_nights__the_next_run_reads_from_the_last_complete_window(fake: FakeStripe) -> None:
    fake.add_invoice(created=ts(T0 - HOUR))
    sync_stripe_orders(now=T0.isoformat(), overlap_hours=1)
    # Nights 2 and 3 never ran (no worker); their invoices wait in Stripe.
    night2 = fake.add_invoice(created=ts(T0 + 12 * HOUR))
    night3 = fake.add_invoice(created=ts(T0 + DAY + 12 * HOUR))

    result = sync_stripe_orders(now=(T0 + 3 * DAY).isoformat(), overlap_hours=1)

    assert fake.requests[-1].query["created[gte]"] == str(ts(T0 - HOUR))
    assert fake.requests[-1].query["created[lte]"] == str(ts(T0 + 3 * DAY))
    assert (result["created"], result["unchanged"]) == (2, 1)
    assert Order.objects.filter(stripe_invoice_id__in=[night2["id"], night3["id"]]).count() == 2
    assert cursor() == T0 + 3 * DAY


@pytest.mark.django_db
def test_failed_run__leaves_the_cursor_so_the_next_night_covers_it(fake: FakeStripe) -> None:
    sync_stripe_orders(now=T0.isoformat(), overlap_hours=1)
    fake.add_invoice(created=ts(T0 + 12 * HOUR))
    fake.fail_next(1, status=503)

    with pytest.raises(stripe.APIError):
        sync_stripe_orders(now=(T0 + DAY).isoformat(), overlap_hours=1)
    assert cursor() == T0

    result = sync_stripe_orders(now=(T0 + 2 * DAY).isoformat(), overlap_hours=1)
    assert fake.requests[-1].query["created[gte]"] == str(ts(T0 - HOUR))
    assert result["created"] == 1 and cursor() == T0 + 2 * DAY


@pytest.mark.django_db
def test_backfill__an_older_now_never_moves_the_cursor_back(fake: FakeStripe) -> None:
    sync_stripe_orders(now=(T0 + DAY).isoformat())
    sync_stripe_orders(now=T0.isoformat())
    assert cursor() == T0 + DAY


# -- failures through a real worker ----------------------------------------------------------------


def _run_until_finished(run_worker: Any, job: Job) -> Job:
    run_worker()
    job.refresh_from_db()
    return job


def _retry_delay(job: Job) -> float:
    last = job.history[-1]
    return (datetime.fromisoformat(last["retry_at"])
            - datetime.fromisoformat(last["finished_at"])).total_seconds()


def test_rate_limit__the_attempt_is_retried_after_backoff_then_succeeds(
    fake: FakeStripe, run_worker: Any
) -> None:
    fake.add_invoice(created=ts(T0 - HOUR))
    fake.add_invoice(created=ts(T0 - 2 * HOUR))
    fake.fail_next(1, status=429)
    job = sync_stripe_orders.enqueue(now=T0.isoformat())

    job = _run_until_finished(run_worker, job)

    assert job.status == JobStatus.RETRYING
    assert job.last_error.startswith("RateLimitError:")
    assert 48 <= _retry_delay(job) <= 72  # the job's Backoff: 60 s ± 20 % after attempt 1
    assert Order.objects.count() == 0 and cursor() is None

    job.retry()  # what the backoff would do a minute later, without waiting for it
    job = _run_until_finished(run_worker, job)

    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2
    assert counts(job.result) == (2, 2, 0, 0)
    assert [entry["outcome"] for entry in job.history] == ["failed", "succeeded"]
    assert job.progress["message"] == "page 1: 2 invoices, 2 new orders"


def test_server_error_mid_way__the_retry_creates_no_duplicates(
    fake: FakeStripe, small_pages: int, run_worker: Any
) -> None:
    invoices = [fake.add_invoice(created=ts(T0 - hour * HOUR)) for hour in range(5, 0, -1)]
    fake.fail_request(2, status=500)  # the second page
    job = sync_stripe_orders.enqueue(now=T0.isoformat())

    job = _run_until_finished(run_worker, job)

    assert job.status == JobStatus.RETRYING and job.last_error.startswith("APIError:")
    assert Order.objects.count() == 2  # the first page was committed, with its emails
    assert len(email_jobs()) == 2 and cursor() is None

    job.retry()
    job = _run_until_finished(run_worker, job)

    assert job.status == JobStatus.SUCCEEDED
    assert (job.result["fetched"], job.result["created"], job.result["unchanged"]) == (5, 3, 2)
    assert sorted(Order.objects.values_list("stripe_invoice_id", flat=True)) == sorted(
        invoice["id"] for invoice in invoices)
    assert sorted(job.kwargs["order_id"] for job in email_jobs()) == sorted(
        Order.objects.values_list("pk", flat=True))
    assert cursor() == T0


@pytest.mark.django_db
def test_server_error__one_blip_is_absorbed_by_the_sdk_network_retry(
    fake: FakeStripe, settings: Any
) -> None:
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    fake.add_invoice(created=ts(T0 - HOUR))
    fake.fail_next(1, status=500)

    result = sync_stripe_orders(now=T0.isoformat())

    assert [r.status for r in fake.requests] == [500, 200]
    assert result["created"] == 1


@pytest.mark.parametrize(("key", "error"), [
    ("", "StripeNotConfigured: STRIPE_API_KEY is empty, so the Stripe sync can't run. Set it"),
    ("sk_test_revoked", "AuthenticationError: "),
], ids=["missing", "rejected"])
def test_bad_key__the_job_is_dead_at_once_saying_why(
    fake: FakeStripe, settings: Any, run_worker: Any, key: str, error: str
) -> None:
    settings.STRIPE_API_KEY = key
    job = _run_until_finished(run_worker, sync_stripe_orders.enqueue())

    assert job.status == JobStatus.DEAD and job.attempts == 1  # no retry would fix it
    assert job.last_error.startswith(error)
    assert not key or key not in job.last_error
    assert Order.objects.count() == 0 and cursor() is None


@pytest.mark.django_db
def test_missing_key__raises_outside_a_worker_too(settings: Any) -> None:
    settings.STRIPE_API_KEY = ""
    with pytest.raises(StripeNotConfigured, match="STRIPE_API_KEY is empty"):
        sync_stripe_orders()


@pytest.mark.django_db
@pytest.mark.parametrize("arguments", [{"now": "yesterday"}, {"now": "2026-01-10T00:05:00"},
                                       {"overlap_hours": -1}])
def test_bad_arguments__a_clear_error_that_no_retry_repeats(
    fake: FakeStripe, arguments: dict[str, Any]
) -> None:
    from example_project.shop.jobs import InvalidSyncArguments

    with pytest.raises(InvalidSyncArguments, match="now=|overlap_hours"):
        sync_stripe_orders(**arguments)
    assert InvalidSyncArguments in sync_stripe_orders.dont_retry


# -- observability ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_logs__searchable_terms_and_never_the_key_or_an_email(
    fake: FakeStripe, caplog: pytest.LogCaptureFixture
) -> None:
    invoice = fake.add_invoice(created=ts(T0 - HOUR), customer_email="secret.person@example.com")
    caplog.set_level(logging.INFO, logger="example_project.shop")

    sync_stripe_orders(now=T0.isoformat())
    fake.update_invoice(invoice["id"], status="void")
    sync_stripe_orders(now=(T0 + DAY).isoformat())

    order = Order.objects.get()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("example_project.shop")]
    assert f"stripe_sync invoice={invoice['id']} order={order.pk} action=created" in lines
    updated = f"stripe_sync invoice={invoice['id']} order={order.pk} action=updated changed=status"
    assert updated in lines
    assert any(line.startswith("stripe_sync event=finished fetched=1 created=1") for line in lines)
    assert "secret.person" not in caplog.text and KEY not in caplog.text


# -- the schedule ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seeded_schedule__five_past_midnight_in_the_project_timezone(settings: Any) -> None:
    from importlib import import_module

    migration = import_module("example_project.shop.migrations.0002_nightly_stripe_sync_schedule")
    # Transactional tests elsewhere flush the table: seed it afresh, as `migrate` does.
    Schedule.objects.filter(name=migration.SCHEDULE_NAME).delete()
    settings.TIME_ZONE = "Europe/Berlin"
    migration.seed_schedule(apps, SimpleNamespace(connection=connection))

    schedule = Schedule.objects.get(name=migration.SCHEDULE_NAME)
    assert (schedule.job_name, schedule.cron, schedule.timezone) == (
        "shop.sync_stripe_orders", "5 0 * * *", "Europe/Berlin")
    assert schedule.enabled and schedule.source == Schedule.Source.ADMIN
    local = schedule.next_run_at.astimezone(cron.zone("Europe/Berlin"))
    assert (local.hour, local.minute) == (0, 5)
    assert schedule.created_at < schedule.next_run_at <= schedule.created_at + DAY

    job = schedule.run_now()
    assert job.name == "shop.sync_stripe_orders" and job.schedule_id == schedule.pk
