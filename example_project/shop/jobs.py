"""The shop's jobs: the nightly Stripe order sync and the order-confirmation email."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import stripe
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_jobs import Backoff, current_job, job

from . import emails, sync
from .models import Order
from .stripe_api import StripeNotConfigured, stripe_client


class InvalidSyncArguments(ValueError):
    """Arguments of ``sync_stripe_orders`` that no retry can fix (from a schedule's kwargs)."""


def order_email_key(order_id: int) -> str:
    """The unique_key of an order's confirmation job: one active job per order."""
    return f"order-email-{order_id}"


@job(
    name="shop.send_order_email",
    max_attempts=5,
    timeout=120,
    # A mail server that refuses now may take a while to come back: 30 s, 90 s, 4.5 min, 13.5 min.
    backoff=Backoff(base=30, factor=3, max_delay=3600, jitter=0.2),
    dont_retry=(Order.DoesNotExist,),
)
def send_order_email(order_id: int) -> dict[str, Any]:
    """Send the confirmation email of an order, at most once per successful send."""
    return emails.send_confirmation(order_id, now=timezone.now())


def enqueue_order_email(order: Order) -> None:
    """Enqueue the order's confirmation in the caller's transaction (once per order)."""
    send_order_email.using(unique_key=order_email_key(order.pk)).enqueue(order_id=order.pk)


def _report_progress(percent: float | None, message: str) -> None:
    context = current_job()
    if context is not None:  # also called outside a worker, e.g. from a shell or a test
        context.set_progress(percent, message)


def _parse_now(now: str | None) -> datetime:
    if now is None:
        return timezone.now()
    try:
        parsed = parse_datetime(now)
    except (TypeError, ValueError):  # not a string, or a 31st of February
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidSyncArguments(
            f"now={now!r} is not an ISO 8601 date and time with a UTC offset; "
            f"write it like '2026-01-31T00:05:00+00:00', or leave it out to mean the current time."
        )
    return parsed


@job(
    name="shop.sync_stripe_orders",
    max_attempts=6,
    timeout=30 * 60,
    # Rate limits and outages pass in minutes, not seconds: 1, 2, 4, 8, 16 min between attempts.
    backoff=Backoff(base=60, factor=2, max_delay=30 * 60, jitter=0.2),
    # A missing or rejected key fails every attempt the same way: dead at once, with the reason.
    dont_retry=(StripeNotConfigured, InvalidSyncArguments, stripe.AuthenticationError,
                stripe.PermissionError),
)
def sync_stripe_orders(
    now: str | None = None, overlap_hours: float = sync.DEFAULT_OVERLAP / timedelta(hours=1)
) -> dict[str, Any]:
    """Upsert orders from the Stripe invoices created since the last complete sync.

    ``now`` (ISO 8601) ends the window instead of the current time: for tests and backfills.
    ``overlap_hours`` is how far before the last sync's end the window starts.
    """
    if not (isinstance(overlap_hours, (int, float)) and overlap_hours >= 0):
        raise InvalidSyncArguments(
            f"overlap_hours must be a number of hours >= 0, not {overlap_hours!r}."
        )
    end = _parse_now(now)
    return sync.sync_invoices(
        stripe_client(),
        now=end,
        overlap=timedelta(hours=overlap_hours),
        on_created=enqueue_order_email,
        progress=_report_progress,
    )
