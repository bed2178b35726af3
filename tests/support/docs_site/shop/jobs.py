"""The shop's jobs, for pages that don't show a shop/jobs.py of their own."""

from __future__ import annotations

from django.core.mail import send_mail
from django.utils import timezone

from django_jobs import job

from .models import Order


@job
def send_receipt(order_id: int) -> None:
    order = Order.objects.get(pk=order_id)
    send_mail("Your receipt", order.receipt_text(), None, [order.customer_email])


@job(max_attempts=5, dont_retry=(Order.DoesNotExist,))
def send_order_email(order_id: int) -> None:
    order = Order.objects.get(pk=order_id)
    if order.emailed_at is None:
        send_mail("Your order", order.receipt_text(), None, [order.customer_email])
        Order.objects.filter(pk=order.pk).update(emailed_at=timezone.now())


def enqueue_order_email(order: Order) -> None:
    send_order_email.using(unique_key=f"order-email-{order.pk}").enqueue(order_id=order.pk)
