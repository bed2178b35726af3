"""scheduler.py without a database: cron options checked at decoration, the scheduling checks, the scheduler among the default services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.checks import run_checks
from django.utils import timezone

from django_jobs import job
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.registry import registry
from django_jobs.services import ServiceContext, default_services
from tests.support.schedules import RECORD, jobs_settings


def test_default_services__include_the_scheduler_unless_turned_off() -> None:
    def names(scheduler: bool) -> list[str]:
        context = ServiceContext(using="default", worker_id="w", clock=timezone.now)
        return [s.name for s in default_services(context, scheduler=scheduler)]

    assert "scheduler" in names(True)
    assert "scheduler" not in names(False)


def test_job_cron__is_normalised_at_decoration(declare: Callable[..., Any]) -> None:
    assert declare("tests.scheduler.daily", "  5 0 * *   * ").cron == "5 0 * * *"


def test_job_cron__a_bad_expression_is_refused_at_decoration() -> None:
    with pytest.raises(InvalidJobOptions, match=r"@job\(cron=…\) on .*'5 0 \* \*' has 4 fields; a cron expression needs 5"):
        @job(name="tests.scheduler.bad_cron", cron="5 0 * *")
        def bad() -> None:
            """Never registered."""
    assert "tests.scheduler.bad_cron" not in registry


def test_job_cron__a_function_that_needs_arguments_is_refused() -> None:
    with pytest.raises(InvalidJobOptions, match=r"runs .*needs_args without arguments, but its signature is needs_args\(day\)"):
        @job(name="tests.scheduler.needs_args", cron="5 0 * * *")
        def needs_args(day):  # type: ignore[no-untyped-def]
            """Never registered."""


@pytest.mark.parametrize(
    ("value", "check_id", "text"),
    [
        ({"SCHEDULES": []}, "django_jobs.E102", "must be a dict of name -> schedule"),
        ({"SCHEDULES": {"r": {"job": RECORD, "cron": "5 0 * * *", "catchup": "all"}}}, "django_jobs.E102", "unknown key 'catchup'; did you mean 'catch_up'"),
        ({"SCHEDULES": {"r": {"job": RECORD}}}, "django_jobs.E102", "needs 'cron'"),
        ({"SCHEDULES": {"r": {"job": RECORD, "cron": "5 0 * *"}}}, "django_jobs.E103", "has 4 fields"),
        ({"SCHEDULES": {"r": {"job": RECORD, "cron": "5 0 * * *", "timezone": "Mars/Olympus"}}}, "django_jobs.E103", "not a timezone"),
        ({"SCHEDULES": {"r": {"job": "tests.nope", "cron": "5 0 * * *"}}}, "django_jobs.E104", "No job is registered as 'tests.nope'"),
        ({"SCHEDULES": {"r": {"job": "tests.add", "cron": "5 0 * * *", "args": [1]}}}, "django_jobs.E104", "missing a required argument: 'b'"),
        ({"SCHEDULE_CATCH_UP_MAX": 0}, "django_jobs.E101", "SCHEDULE_CATCH_UP_MAX"),
        ({"SCHEDULE_MISFIRE_GRACE": -1}, "django_jobs.E101", "SCHEDULE_MISFIRE_GRACE"),
        ({"SCHEDULE_MISFIRE_GRACE": float("nan")}, "django_jobs.E101", "SCHEDULE_MISFIRE_GRACE"),
        ({"SCHEDULE_GRACE": 0}, "django_jobs.E101", "DJANGO_JOBS['SCHEDULE_GRACE'] is 0; it must be seconds > 0 and at most 315,360,000"),
        ({"SCHEDULE_GRACE": "1h"}, "django_jobs.E101", "SCHEDULE_GRACE"),
        ({"SCHEDULE_GRACE": 1e11}, "django_jobs.E101", "at most 315,360,000 (10 years)"),
        ({"SCHEDULE_GRACE": float("inf")}, "django_jobs.E101", "SCHEDULE_GRACE"),
    ],
)
def test_checks__refuse_bad_scheduling_settings(value: dict[str, Any], check_id: str, text: str) -> None:
    with jobs_settings(**value):
        errors = [e for e in run_checks() if e.id.startswith("django_jobs.E1")]

    assert [e.id for e in errors] == [check_id]
    assert text in errors[0].msg


def test_checks__a_schedule_declared_twice_is_refused(declare: Callable[..., Any]) -> None:
    declare("tests.scheduler.nightly", "5 0 * * *")

    with jobs_settings(SCHEDULES={"tests.scheduler.nightly": {"job": RECORD, "cron": "0 1 * * *"}}):
        errors = [e for e in run_checks() if e.id.startswith("django_jobs.E1")]

    assert [e.id for e in errors] == ["django_jobs.E105"]


def test_checks__good_scheduling_settings_pass() -> None:
    entries = {"r": {"job": "tests.add", "cron": "@daily", "args": [1, 2], "timezone": "Europe/Berlin"}}
    with jobs_settings(SCHEDULES=entries, SCHEDULE_CATCH_UP_MAX=5, SCHEDULE_MISFIRE_GRACE=0):
        assert [e for e in run_checks() if e.id.startswith("django_jobs.")] == []
