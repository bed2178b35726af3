"""The shop the docs talk about: orders and customers, with the fields and methods they use."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Order(models.Model):
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                 on_delete=models.SET_NULL)
    customer_name = models.CharField(max_length=255, blank=True, default="")
    customer_email = models.EmailField(blank=True, default="")
    total = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="eur")
    receipt_sent_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    def receipt_text(self) -> str:
        return f"Order {self.pk}: {self.total / 100:.2f} {self.currency.upper()}"

    def mark_receipt_sent(self) -> None:
        self.receipt_sent_at = timezone.now()
        self.save(update_fields=["receipt_sent_at"])


class Customer(models.Model):
    name = models.CharField(max_length=255)
    loyalty_points = models.IntegerField(default=0)

    def recalculate_points(self) -> None:
        self.loyalty_points = Order.objects.filter(customer_name=self.name).count()
        self.save(update_fields=["loyalty_points"])
