"""apps.py: ready() registers the system checks, the log and alert receivers, and the jobs."""

from __future__ import annotations

import sys

import pytest
from django.core.checks import registry as checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_jobs.registry import autodiscover, registry
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


def test_autodiscover__imports_the_modules_imports_lists() -> None:
    sys.modules.pop("tests.support.imported_at_startup", None)
    assert "tests.support.imported_at_startup.ping" not in registry

    with override_settings(DJANGO_JOBS={"IMPORTS": ["tests.support.imported_at_startup"]}):
        autodiscover()

    assert "tests.support.imported_at_startup.ping" in registry


def test_autodiscover__a_module_imports_lists_that_cannot_be_imported_is_named() -> None:
    with (
        override_settings(DJANGO_JOBS={"IMPORTS": ["tests.support.imported_at_startup.ping"]}),
        pytest.raises(ImproperlyConfigured, match=r"""DJANGO_JOBS\["IMPORTS"\] lists 'tests.support.imported_at_startup.ping', which can't be imported"""),
    ):
        autodiscover()
