"""Placing an order enqueues its confirmation in the same transaction."""

from __future__ import annotations

from django import forms
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from .jobs import enqueue_order_email
from .models import Order


class OrderForm(forms.ModelForm):
    class Meta:
        model = Order
        fields = ["customer_name", "customer_email", "total", "currency"]

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].lower()
        if len(currency) != 3 or not currency.isalpha():
            raise forms.ValidationError("Give a three-letter currency code, like eur.")
        return currency


def place_order(request: HttpRequest) -> HttpResponse:
    form = OrderForm(request.POST or None)
    if not form.is_valid():
        return HttpResponse(str(form.errors), status=400)
    with transaction.atomic():
        order = form.save()
        enqueue_order_email(order)
    return HttpResponse(f"order {order.pk}", status=201)
