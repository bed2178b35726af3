from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("orders/new/", views.place_order, name="place_order"),
]
