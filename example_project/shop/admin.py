"""Admin pages for orders (a read-only mirror of Stripe) and the sync cursor."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import ngettext

from .emails import format_amount
from .jobs import enqueue_order_email
from .models import Order, SyncCursor


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("__str__", "customer_name", "amount", "status", "stripe_created_at",
                    "emailed_at")
    list_filter = ("status", "currency", ("emailed_at", admin.EmptyFieldListFilter))
    search_fields = ("stripe_invoice_id", "number", "customer_email", "customer_name")
    date_hierarchy = "stripe_created_at"
    readonly_fields = ("stripe_invoice_id", "number", "customer_email", "customer_name", "total",
                       "currency", "amount", "status", "stripe_created_at", "emailed_at",
                       "created_at", "updated_at")
    fields = readonly_fields
    actions = ["send_confirmation"]

    @admin.display(description="total", ordering="total")
    def amount(self, order: Order) -> str:
        return format_amount(order.total, order.currency)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Orders come from Stripe (or the shop's form, which also enqueues the email).
        return False

    @admin.action(description="Send the confirmation email (orders not emailed yet)")
    def send_confirmation(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        pending = list(queryset.filter(emailed_at__isnull=True))
        with transaction.atomic():
            for order in pending:
                enqueue_order_email(order)  # an order whose email job is still active keeps it
        skipped = queryset.count() - len(pending)
        self.message_user(request, ngettext(
            "Enqueued the confirmation of %d order.",
            "Enqueued the confirmations of %d orders.", len(pending)) % len(pending),
            messages.SUCCESS if pending else messages.WARNING)
        if skipped:
            self.message_user(request, ngettext(
                "Skipped %d order whose confirmation was already sent.",
                "Skipped %d orders whose confirmations were already sent.", skipped) % skipped,
                messages.INFO)


@admin.register(SyncCursor)
class SyncCursorAdmin(admin.ModelAdmin):
    list_display = ("name", "synced_until", "updated_at")
    readonly_fields = ("name", "updated_at")
    fields = ("name", "synced_until", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the sync creates its cursor; edit synced_until to re-read older invoices
