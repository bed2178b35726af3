"""Optional URLs: ``path("jobs/", include("django_jobs.urls"))`` serves ``jobs/metrics``."""

from __future__ import annotations

from django.urls import path

from .metrics import metrics

app_name = "django_jobs"
urlpatterns = [path("metrics", metrics, name="metrics")]
