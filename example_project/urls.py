"""URLs of the demo project: the admin, where the jobs are, the shop's order form, and the
jobs' Prometheus metrics (``jobs/metrics``)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("shop/", include("example_project.shop.urls")),
    path("jobs/", include("django_jobs.urls")),
]
