"""URLs of the shop: ``orders/new/``, the form that places an order."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("orders/new/", views.place_order, name="place_order"),
]
