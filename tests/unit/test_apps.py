"""apps.py: ready() registers the system checks, the log and alert receivers, and the jobs."""

from __future__ import annotations

from django.core.checks import registry as checks

from django_jobs.registry import registry
from django_jobs.signals import job_finished, job_started


def uids(signal: object) -> set[str]:
    return {receiver[0][0] for receiver in signal.receivers}  # type: ignore[attr-defined]


def test_ready__registers_the_checks() -> None:
    assert "django_jobs.checks" in {check.__module__ for check in checks.registry.get_checks()}


def test_ready__connects_the_log_and_alert_receivers() -> None:
    assert "django_jobs.log.started" in uids(job_started)
    assert {"django_jobs.log.finished", "django_jobs.alerts.dead"} <= uids(job_finished)


def test_ready__discovers_the_installed_apps_jobs() -> None:
    assert "tests.add" in registry
