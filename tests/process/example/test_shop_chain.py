"""The shop end to end: a real ``runjobs`` process syncs Stripe, creates orders, sends the emails.

The worker runs with the example project's own settings (``example_project.settings``, read from
the environment as in the demo) against the test database, the fake Stripe server of this
process, and the file email backend in a temporary folder, so every email sent is a file to count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from django_jobs.models import Job, JobStatus, Schedule
from example_project.shop.fake_stripe import FakeStripe
from example_project.shop.jobs import sync_stripe_orders
from example_project.shop.models import Order
from tests.support.procs import WorkerProcess, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

KEY = "sk_test_fake_shop_chain"


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=KEY) as server:
        yield server


@pytest.fixture
def shop_worker(worker_process: Callable[..., WorkerProcess], fake: FakeStripe,
                tmp_path: Path) -> tuple[WorkerProcess, Path]:
    """A ``runjobs`` process of the example project, pointed at the fake Stripe; its mail folder."""
    mail_dir = tmp_path / "mail"
    worker = worker_process("--concurrency", "2", env={
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "STRIPE_API_KEY": KEY,
        "STRIPE_API_BASE": fake.url,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "EMAIL_URL": f"filemail:///{mail_dir}",  # "filemail:///" + "/abs/path", as in demo.py
        "DEFAULT_FROM_EMAIL": "shop@example.com",
    })
    worker.wait_for_output("event=worker_started", timeout=30)
    return worker, mail_dir


def emails_by_recipient(mail_dir: Path) -> dict[str, int]:
    """How many messages the file backend wrote to each recipient."""
    counts: dict[str, int] = {}
    for path in mail_dir.glob("*.log") if mail_dir.exists() else []:
        for line in path.read_text().splitlines():
            if line.startswith("To: "):
                counts[line[4:]] = counts.get(line[4:], 0) + 1
    return counts


def finished(job: Job) -> Job | None:
    job.refresh_from_db()
    return job if job.is_finished else None


def all_emailed(mail_dir: Path) -> bool:
    orders = Order.objects.count()
    return bool(orders) and (
        not Order.objects.filter(emailed_at__isnull=True).exists()
        and sum(emails_by_recipient(mail_dir).values()) >= orders
    )


def test_run_now__sync_then_exactly_one_email_per_order(
    shop_worker: tuple[WorkerProcess, Path], fake: FakeStripe
) -> None:
    worker, mail_dir = shop_worker
    now = int(time.time())
    for hours in (30, 20, 10, 2):
        fake.add_invoice(created=now - hours * 3600)
    migration = import_module("example_project.shop.migrations.0002_nightly_stripe_sync_schedule")
    migration.seed_schedule(apps, SimpleNamespace(connection=connection))
    schedule = Schedule.objects.get(name=migration.SCHEDULE_NAME)

    sync_job = schedule.run_now()  # the admin's "run now"

    job = wait_until(lambda: finished(sync_job), 60, "the sync job to finish")
    assert job.status == JobStatus.SUCCEEDED, worker.describe()
    assert (job.result["fetched"], job.result["created"]) == (4, 4)
    wait_until(lambda: all_emailed(mail_dir), 60, "every order's email")
    recipients = {invoice["customer_email"] for invoice in fake.invoices.values()}
    assert emails_by_recipient(mail_dir) == {address: 1 for address in recipients}

    # The next night: one invoice paid, one new. One more email, for the new order only.
    fake.update_invoice("in_fake000001", status="void")
    new = fake.add_invoice(created=now - 60, customer_email="late@example.com")
    second_job = sync_stripe_orders.enqueue()
    second = wait_until(lambda: finished(second_job), 60, "the second sync")
    assert [second.result[k] for k in ("created", "updated", "unchanged")] == [1, 1, 3]
    wait_until(lambda: all_emailed(mail_dir), 60, "the new order's email")
    assert emails_by_recipient(mail_dir) == {**{address: 1 for address in recipients},
                                             new["customer_email"]: 1}
    assert Order.objects.count() == 5

    jobs = Job.objects.filter(name="shop.send_order_email")
    wait_until(lambda: not jobs.exclude(status=JobStatus.SUCCEEDED).exists(), 30, "email jobs done")
    assert jobs.count() == 5
    output = worker.output()
    assert f"invoice={new['id']} order=" in output and "action=created" in output
    assert "@example.com" not in output and KEY not in output  # no PII or secrets in the log
