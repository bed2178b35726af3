"""The shop's one page: place an order, and its confirmation email is enqueued with it."""

from __future__ import annotations

from django import forms
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from .jobs import order_email_key, send_order_email
from .models import Order


class OrderForm(forms.ModelForm):
    class Meta:
        model = Order
        fields = ["customer_name", "customer_email", "total", "currency"]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["customer_email"].required = True
        self.fields["total"].min_value = 1

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().lower()
        if len(currency) != 3 or not currency.isalpha():
            raise forms.ValidationError("Give a three-letter ISO currency code, like eur or usd.")
        return currency


@require_http_methods(["GET", "POST"])
def place_order(request: HttpRequest) -> HttpResponse:
    """Show the order form; on a valid POST create the order and enqueue its confirmation."""
    form = OrderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # One transaction for both rows: the job exists only if the order does, and a worker
        # can't pick the job up before the order it reads is committed.
        with transaction.atomic():
            order = form.save()
            email_job = send_order_email.using(unique_key=order_email_key(order.pk)).enqueue(
                order_id=order.pk
            )
        return render(request, "shop/order_placed.html", {"order": order, "job": email_job},
                      status=201)
    status = 400 if request.method == "POST" else 200
    return render(request, "shop/order_form.html", {"form": form}, status=status)
