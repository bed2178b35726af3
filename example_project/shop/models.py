"""Orders, and where the Stripe sync got to."""

from __future__ import annotations

from django.db import models


class OrderStatus(models.TextChoices):
    """The status of the Stripe invoice behind an order (Stripe's own values)."""

    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"
    VOID = "void", "Void"


class Order(models.Model):
    """A customer's order: one Stripe invoice, or one placed through the shop's own form."""

    # NULL for orders placed through the shop's form; unique among the rest, which is what
    # makes the sync an upsert and a retried sync free of duplicates.
    stripe_invoice_id = models.CharField(
        "Stripe invoice id", max_length=255, unique=True, null=True, blank=True
    )
    number = models.CharField("invoice number", max_length=255, blank=True, default="")
    customer_email = models.EmailField(blank=True, default="")
    customer_name = models.CharField(max_length=255, blank=True, default="")
    total = models.BigIntegerField(help_text="In the currency's smallest unit (cents for EUR).")
    currency = models.CharField(max_length=3, help_text="ISO code, lower case as Stripe sends it.")
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.OPEN)
    stripe_created_at = models.DateTimeField("created in Stripe", null=True, blank=True)
    # Set once, by the first successful send (see emails.mark_emailed); never cleared by code.
    emailed_at = models.DateTimeField("confirmation emailed at", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-stripe_created_at", "-id"]

    def __str__(self) -> str:
        return self.number or self.stripe_invoice_id or f"order {self.pk}"


class SyncCursor(models.Model):
    """How far a sync has got: every source record created up to ``synced_until`` is stored.

    Written only when a run has committed its whole window, so a failed or missed run leaves
    it behind and the next run starts from there.
    """

    name = models.CharField(max_length=100, unique=True)
    synced_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
