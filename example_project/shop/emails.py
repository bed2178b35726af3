"""The order-confirmation email: render it, send it, and remember that it was sent."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from .models import Order

logger = logging.getLogger(__name__)

#: Currencies Stripe counts in whole units (no cents) or in thousandths.
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                "vnd", "vuv", "xaf", "xof", "xpf"}
THREE_DECIMAL = {"bhd", "jod", "kwd", "omr", "tnd"}


def format_amount(total: int, currency: str) -> str:
    """Format an amount in the smallest unit: ``format_amount(1999, "eur")`` is "19.99 EUR"."""
    code = currency.lower()
    places = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    return f"{total / 10 ** places:,.{places}f} {code.upper()}"


def build_message(order: Order) -> EmailMultiAlternatives:
    """Render the confirmation of ``order`` as a text email with an HTML alternative."""
    context = {"order": order, "total": format_amount(order.total, order.currency)}
    subject = f"Your order {order} is confirmed"
    text = render_to_string("shop/email/order_confirmation.txt", context)
    html = render_to_string("shop/email/order_confirmation.html", context)
    message = EmailMultiAlternatives(subject, text, to=[order.customer_email])
    message.attach_alternative(html, "text/html")
    return message


def mark_emailed(order_id: int, now: datetime) -> bool:
    """Record that the confirmation went out; False when another run had recorded it already."""
    return bool(Order.objects.filter(pk=order_id, emailed_at__isnull=True).update(emailed_at=now))


def send_confirmation(order_id: int, now: datetime) -> dict[str, Any]:
    """Send the order's confirmation unless it was sent before; return what happened.

    At least once: the mail server accepts the message before ``emailed_at`` is written, so a
    crash between the two sends it again on the retry. Once ``emailed_at`` is written, no retry
    sends it again.
    """
    order = Order.objects.get(pk=order_id)
    if order.emailed_at is not None:
        logger.info("order_email order=%s action=skipped reason=already_sent", order.pk)
        return {"order": order.pk, "sent": False, "reason": "already sent"}
    if not order.customer_email:
        logger.info("order_email order=%s action=skipped reason=no_address", order.pk)
        return {"order": order.pk, "sent": False, "reason": "no email address"}
    # Django's backends raise on failure (fail_silently is off), which fails the attempt and
    # lets the job's retry policy try again later; EMAIL_TIMEOUT keeps a dead server from
    # holding the attempt until the job's own timeout.
    build_message(order).send()
    if not mark_emailed(order.pk, now):
        # Only possible when two attempts ran at once (an operator forced a retry of a running
        # job): the customer got two emails. Loud, so it is noticed.
        logger.warning("order_email order=%s action=sent_twice", order.pk)
        return {"order": order.pk, "sent": True, "duplicate": True}
    logger.info("order_email order=%s action=sent", order.pk)
    return {"order": order.pk, "sent": True}
