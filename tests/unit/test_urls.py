"""urls.py: the optional URLs, included under jobs/ by the test project."""

from __future__ import annotations

from django.urls import resolve, reverse

from django_jobs.metrics import metrics


def test_metrics__resolves_to_the_metrics_view() -> None:
    url = reverse("django_jobs:metrics")

    assert url == "/jobs/metrics"
    assert resolve(url).func is metrics
