"""The order-confirmation email: its content, a real SMTP server, and retries that don't resend.

Jobs run directly (``send_order_email(order_id=…)``) where only the email matters, with the
locmem backend; through a real burst worker where the retry matters, with the file backend
(the worker runs jobs in forked processes, whose locmem outbox the test can't see).
"""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.urls import reverse

from django_jobs import current_job
from django_jobs.models import Job, JobStatus
from django_jobs.testing import EnqueuedJobs
from example_project.shop import emails, views
from example_project.shop.jobs import order_email_key, send_order_email
from example_project.shop.models import Order


def make_order(**fields: Any) -> Order:
    values = {"stripe_invoice_id": "in_mail1", "number": "SHOP-0042",
              "customer_name": "Ada Lovelace", "customer_email": "ada@example.com",
              "total": 1999, "currency": "eur", "status": "paid"}
    return Order.objects.create(**{**values, **fields})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the message ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_send__text_and_html_to_the_customer_then_marked(settings: Any) -> None:
    settings.DEFAULT_FROM_EMAIL = "shop@example.com"
    order = make_order()

    result = send_order_email(order_id=order.pk)

    assert result == {"order": order.pk, "sent": True}
    [message] = mail.outbox
    assert message.to == ["ada@example.com"] and message.from_email == "shop@example.com"
    assert message.subject == "Your order SHOP-0042 is confirmed"
    assert "Hello Ada Lovelace," in message.body and "Total: 19.99 EUR" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert "<strong>SHOP-0042</strong>" in html and "19.99 EUR" in html
    order.refresh_from_db()
    assert order.emailed_at is not None


@pytest.mark.django_db
def test_send__the_customer_name_is_escaped_in_html_only() -> None:
    order = make_order(customer_name="Bobby <b>Tables</b> & Co")
    send_order_email(order_id=order.pk)
    [message] = mail.outbox
    assert "Hello Bobby <b>Tables</b> & Co," in message.body
    assert "Bobby &lt;b&gt;Tables&lt;/b&gt; &amp; Co" in message.alternatives[0][0]


@pytest.mark.parametrize(("total", "currency", "shown"), [
    (1999, "eur", "19.99 EUR"), (500, "JPY", "500 JPY"), (1234567, "usd", "12,345.67 USD"),
    (1500, "kwd", "1.500 KWD"), (0, "gbp", "0.00 GBP"),
])
def test_format_amount__in_the_currency_s_own_decimals(total: int, currency: str,
                                                        shown: str) -> None:
    assert emails.format_amount(total, currency) == shown


@pytest.mark.django_db
def test_send__a_second_run_sends_nothing() -> None:
    order = make_order()
    send_order_email(order_id=order.pk)
    first_mark = Order.objects.get(pk=order.pk).emailed_at

    assert send_order_email(order_id=order.pk) == {
        "order": order.pk, "sent": False, "reason": "already sent"}
    assert len(mail.outbox) == 1
    assert Order.objects.get(pk=order.pk).emailed_at == first_mark


@pytest.mark.django_db
def test_send__an_order_without_an_address_is_skipped() -> None:
    order = make_order(customer_email="")
    assert send_order_email(order_id=order.pk)["reason"] == "no email address"
    assert mail.outbox == []


@pytest.mark.django_db
def test_send__a_deleted_order_fails_for_good() -> None:
    with pytest.raises(Order.DoesNotExist):
        send_order_email(order_id=999999)
    assert Order.DoesNotExist in send_order_email.dont_retry


# -- a real SMTP server ----------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping what it receives."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[Inbox]:
    """An SMTP server on localhost that Django's SMTP backend is pointed at."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "shop@example.com"
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.mark.django_db
def test_smtp__the_server_receives_one_multipart_message(smtp_server: Inbox) -> None:
    order = make_order()

    send_order_email(order_id=order.pk)

    [envelope] = smtp_server.envelopes
    assert envelope.mail_from == "shop@example.com" and envelope.rcpt_tos == ["ada@example.com"]
    message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert message["Subject"] == "Your order SHOP-0042 is confirmed"
    assert message.get_content_type() == "multipart/alternative"
    assert "19.99 EUR" in message.get_body(("plain",)).get_content()
    assert "<strong>SHOP-0042</strong>" in message.get_body(("html",)).get_content()
    assert Order.objects.get(pk=order.pk).emailed_at is not None


@pytest.mark.django_db
def test_smtp__server_down_fails_the_attempt_and_marks_nothing(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 5
    order = make_order()

    with pytest.raises(OSError):  # refused: the attempt fails and the job's backoff retries it
        send_order_email(order_id=order.pk)

    assert Order.objects.get(pk=order.pk).emailed_at is None
    assert not any(issubclass(OSError, cls) for cls in send_order_email.dont_retry)


# -- retries through a real worker -----------------------------------------------------------------


@pytest.fixture
def mail_dir(settings: Any, tmp_path: Path) -> Path:
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    return tmp_path / "mail"


def sent_count(mail_dir: Path) -> int:
    """Messages the file backend wrote (two sends in one second may share a file)."""
    files = mail_dir.glob("*.log") if mail_dir.exists() else []
    return sum(path.read_text().count("\nMessage-ID: ") for path in files)


def fail_first_attempt(monkeypatch: pytest.MonkeyPatch, *, after_marking: bool) -> None:
    """Make attempt 1 fail right after (or instead of) writing emailed_at, as a crash would."""
    original = emails.mark_emailed

    def mark_then_fail(order_id: int, now: Any) -> bool:
        context = current_job()
        if context is None or context.attempt > 1:
            return original(order_id, now)
        if after_marking:
            original(order_id, now)
        raise ConnectionError("lost the database connection")

    # Before the worker forks: its job processes inherit the patched module.
    monkeypatch.setattr(emails, "mark_emailed", mark_then_fail)


def run_attempt(run_worker: Any, job: Job) -> Job:
    run_worker()
    job.refresh_from_db()
    return job


def test_failure_after_marking__the_retry_sends_no_second_email(
    mail_dir: Path, monkeypatch: pytest.MonkeyPatch, run_worker: Any
) -> None:
    order = make_order()
    fail_first_attempt(monkeypatch, after_marking=True)
    job = send_order_email.using(unique_key=order_email_key(order.pk)).enqueue(order_id=order.pk)

    job = run_attempt(run_worker, job)
    assert job.status == JobStatus.RETRYING and job.last_error.startswith("ConnectionError")
    assert sent_count(mail_dir) == 1

    job.retry()  # now rather than after the backoff
    job = run_attempt(run_worker, job)

    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"order": order.pk, "sent": False, "reason": "already sent"}
    assert sent_count(mail_dir) == 1


def test_failure_between_sending_and_marking__the_retry_sends_again(
    mail_dir: Path, monkeypatch: pytest.MonkeyPatch, run_worker: Any
) -> None:
    """At least once, as documented: a crash after the mail server accepted, before the mark."""
    order = make_order()
    fail_first_attempt(monkeypatch, after_marking=False)
    job = send_order_email.enqueue(order_id=order.pk)

    job = run_attempt(run_worker, job)
    assert job.status == JobStatus.RETRYING
    job.retry()
    job = run_attempt(run_worker, job)

    assert job.status == JobStatus.SUCCEEDED and job.result["sent"] is True
    assert sent_count(mail_dir) == 2


# -- enqueued from a view --------------------------------------------------------------------------


ORDER_FORM = {"customer_name": "Grace Hopper", "customer_email": "grace@example.com",
              "total": "2500", "currency": "USD"}


@pytest.mark.django_db
@pytest.mark.urls("example_project.urls")
def test_place_order__creates_the_order_and_enqueues_its_email(
    client: Any, enqueued_jobs: EnqueuedJobs
) -> None:
    assert client.get(reverse("shop:place_order")).status_code == 200

    response = client.post(reverse("shop:place_order"), ORDER_FORM)

    assert response.status_code == 201
    order = Order.objects.get()
    assert (order.customer_email, order.total, order.currency, order.stripe_invoice_id) == (
        "grace@example.com", 2500, "usd", None)
    job = enqueued_jobs.assert_enqueued(send_order_email, kwargs={"order_id": order.pk}, count=1)
    assert job.unique_key == order_email_key(order.pk)
    assert f"job #{job.pk}" in response.content.decode()
    # And the job it enqueued sends the confirmation, run here as a worker would run it.
    (ran,) = enqueued_jobs.run()
    assert ran.status == JobStatus.SUCCEEDED
    assert [m.to for m in mail.outbox] == [["grace@example.com"]]


@pytest.mark.django_db
@pytest.mark.urls("example_project.urls")
def test_place_order__a_failed_enqueue_rolls_the_order_back(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        def using(self, **options: Any) -> Broken:
            return self

        def enqueue(self, **kwargs: Any) -> None:
            raise RuntimeError("the job table is unavailable")

    monkeypatch.setattr(views, "send_order_email", Broken())
    with pytest.raises(RuntimeError):
        client.post(reverse("shop:place_order"), ORDER_FORM)
    assert not Order.objects.exists()


@pytest.mark.django_db
@pytest.mark.urls("example_project.urls")
def test_place_order__bad_input_shows_the_form_again_and_enqueues_nothing(
    client: Any, enqueued_jobs: EnqueuedJobs
) -> None:
    response = client.post(reverse("shop:place_order"), {**ORDER_FORM, "currency": "e1r",
                                                          "customer_email": ""})
    assert response.status_code == 400
    assert "three-letter ISO currency code" in response.content.decode()
    assert not Order.objects.exists()
    enqueued_jobs.assert_not_enqueued()


@pytest.mark.django_db
def test_admin_action__enqueues_the_emails_not_sent_yet_once(admin_client: Any) -> None:
    sent = make_order(stripe_invoice_id="in_sent")
    Order.objects.filter(pk=sent.pk).update(emailed_at="2026-01-10T00:00:00Z")
    pending = make_order(stripe_invoice_id="in_pending")
    url = reverse("admin:shop_order_changelist")
    for _ in range(2):  # twice: the unique key keeps it to one active job
        response = admin_client.post(url, {"action": "send_confirmation",
                                           "_selected_action": [sent.pk, pending.pk]}, follow=True)
        assert response.status_code == 200
    assert [job.kwargs for job in Job.objects.all()] == [{"order_id": pending.pk}]
    shown = [str(m) for m in response.context["messages"]]
    assert "Enqueued the confirmation of 1 order." in shown
    assert "Skipped 1 order whose confirmation was already sent." in shown
