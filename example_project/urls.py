"""URLs of the demo project: the admin, where the jobs are, and the shop's order form."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("shop/", include("example_project.shop.urls")),
]
