"""Upsert Stripe invoices into orders, a window at a time, behind a cursor.

The shape that makes the sync safe to retry and to miss:

* The window is ``(cursor - overlap, now]`` by invoice creation time. The cursor is the end of
  the last window that was committed in full; the overlap re-reads recent invoices, whose status
  and total may have changed since, and any Stripe listed late.
* Each page is committed in its own transaction, with the confirmation emails of the orders it
  created. A failure part-way keeps the pages already done; the retry reads them again and finds
  them unchanged (the invoice id is unique), so nothing is created or emailed twice.
* The cursor moves to ``now`` only after the last page is committed. A failed or missed night
  leaves it where it was, so the next run's window covers that night as well.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

import stripe
from django.db import IntegrityError, transaction
from django.db.models import Q

from .models import Order, SyncCursor

logger = logging.getLogger(__name__)

CURSOR_NAME = "stripe_invoices"
#: Stripe's largest page: fewer requests, fewer chances to hit the rate limit.
PAGE_SIZE = 100
#: Re-read three days of invoices each night: long enough to see an invoice go from open to
#: paid in the usual payment terms; older changes need a wider window or Stripe's webhooks.
DEFAULT_OVERLAP = timedelta(hours=72)

#: The order fields copied from an invoice and compared to decide "updated" or "unchanged".
#: ``stripe_created_at`` is not among them: Stripe never changes it.
SYNCED_FIELDS = ("number", "customer_email", "customer_name", "total", "currency", "status")

Progress = Callable[[float | None, str], None]


def invoice_fields(invoice: stripe.Invoice) -> dict[str, Any]:
    """Map a Stripe invoice to the order fields it determines."""
    data = invoice.to_dict()
    return {
        "number": data.get("number") or "",
        "customer_email": data.get("customer_email") or "",
        "customer_name": data.get("customer_name") or "",
        "total": int(data.get("total") or 0),
        "currency": (data.get("currency") or "").lower(),
        "status": data.get("status") or "",
    }


def _created_at(invoice: stripe.Invoice) -> datetime:
    return datetime.fromtimestamp(invoice["created"], tz=UTC)


def _pages(items: Iterable[stripe.Invoice], size: int) -> Iterator[list[stripe.Invoice]]:
    iterator = iter(items)
    while page := list(islice(iterator, size)):
        yield page


def _log(invoice_id: str, order: Order, action: str, level: int = logging.INFO,
         **extra: Any) -> None:
    # Searchable key=value terms; never the customer's email or the API key.
    fields = "".join(f" {key}={value}" for key, value in extra.items())
    logger.log(level, "stripe_sync invoice=%s order=%s action=%s%s",
               invoice_id, order.pk, action, fields)


def _create(invoice: stripe.Invoice, fields: dict[str, Any]) -> Order | None:
    """Create the invoice's order, or return None when a concurrent run created it first."""
    try:
        with transaction.atomic():  # a savepoint: a lost race must not abort the page
            return Order.objects.create(
                stripe_invoice_id=invoice["id"], stripe_created_at=_created_at(invoice), **fields
            )
    except IntegrityError:
        return None


def upsert_page(
    invoices: list[stripe.Invoice], counts: Counter[str], on_created: Callable[[Order], None]
) -> None:
    """Create, update or leave alone the order of each invoice; call in a transaction."""
    ids = [invoice["id"] for invoice in invoices]
    existing = {
        order.stripe_invoice_id: order
        for order in Order.objects.select_for_update().filter(stripe_invoice_id__in=ids)
    }
    for invoice in invoices:
        fields = invoice_fields(invoice)
        order = existing.get(invoice["id"])
        if order is None:
            order = _create(invoice, fields)
            if order is not None:
                existing[invoice["id"]] = order
                on_created(order)
                counts["created"] += 1
                _log(invoice["id"], order, "created")
                continue
            order = Order.objects.select_for_update().get(stripe_invoice_id=invoice["id"])
            existing[invoice["id"]] = order
        changed = [name for name in SYNCED_FIELDS if getattr(order, name) != fields[name]]
        if changed:
            for name in changed:
                setattr(order, name, fields[name])
            order.save(update_fields=[*changed, "updated_at"])
            counts["updated"] += 1
            _log(invoice["id"], order, "updated", changed=",".join(changed))
        else:
            counts["unchanged"] += 1
            _log(invoice["id"], order, "unchanged", logging.DEBUG)


def _percent(since: datetime | None, until: datetime, reached: datetime) -> float | None:
    # Stripe lists newest first, so the oldest invoice seen so far says how much of the
    # window is done. Without a lower bound (the first run) there is no "how much".
    if since is None or until <= since:
        return None
    done = (until - reached) / (until - since)
    return round(100 * min(max(done, 0.0), 1.0), 1)


def sync_invoices(
    client: stripe.StripeClient,
    *,
    now: datetime,
    overlap: timedelta = DEFAULT_OVERLAP,
    on_created: Callable[[Order], None] = lambda order: None,
    progress: Progress = lambda percent, message: None,
) -> dict[str, Any]:
    """Sync the invoices created in ``(cursor - overlap, now]`` into orders; return the counts.

    ``on_created`` runs inside the transaction that creates each order (enqueue its email
    there). The cursor moves to ``now`` only once every page is committed.
    """
    cursor, _ = SyncCursor.objects.get_or_create(name=CURSOR_NAME)
    since = cursor.synced_until - overlap if cursor.synced_until else None
    created: dict[str, int] = {"lte": int(now.timestamp())}
    if since is not None:
        created["gte"] = int(since.timestamp())
    logger.info(
        "stripe_sync event=started since=%s until=%s",
        since.isoformat() if since else "beginning", now.isoformat(),
    )
    counts: Counter[str] = Counter()
    invoices = client.v1.invoices.list(params={"limit": PAGE_SIZE, "created": created})
    for number, page in enumerate(_pages(invoices.auto_paging_iter(), PAGE_SIZE), start=1):
        with transaction.atomic():
            upsert_page(page, counts, on_created)
        counts["fetched"] += len(page)
        progress(
            _percent(since, now, _created_at(page[-1])),
            f"page {number}: {counts['fetched']} invoices, {counts['created']} new orders",
        )
    # Never backwards: a run for an older `now` (a backfill) must not undo a later one.
    SyncCursor.objects.filter(
        Q(synced_until__isnull=True) | Q(synced_until__lt=now), name=CURSOR_NAME
    ).update(synced_until=now)
    result = {key: counts[key] for key in ("fetched", "created", "updated", "unchanged")}
    logger.info(
        "stripe_sync event=finished fetched=%(fetched)s created=%(created)s "
        "updated=%(updated)s unchanged=%(unchanged)s", result,
    )
    result["since"] = since.isoformat() if since else None
    result["until"] = now.isoformat()
    return result
