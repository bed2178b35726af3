"""The scheduler service: syncs declared schedules once, then fires due ticks and says when to run again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_jobs.models import Job, Schedule
from django_jobs.services import ServiceContext
from django_jobs.services.scheduler import Scheduler
from tests.support.schedules import T0, UTC, make

pytestmark = pytest.mark.usefixtures("only_our_schedules")


def at(hour: int, minute: int = 0, second: float = 0, day: int = 7) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC) + timedelta(seconds=second)


@pytest.mark.django_db
def test_service__logs_schedules_for_unregistered_jobs_once_at_start(caplog: Any) -> None:
    schedule = make("0 * * * *", name="gone")
    Schedule.objects.filter(pk=schedule.pk).update(job_name="deployed.later.job")
    service = Scheduler(ServiceContext(using="default", worker_id="w", clock=timezone.now))

    service.run(at(10))
    service.run(at(11))

    lines = [r.getMessage() for r in caplog.records if "schedule_unregistered" in r.getMessage()]
    assert len(lines) == 1
    assert "schedule=gone name=deployed.later.job" in lines[0]


@pytest.mark.django_db
def test_service__waits_until_the_next_tick_but_at_most_a_second() -> None:
    service = Scheduler(ServiceContext(using="default", worker_id="", clock=timezone.now))
    assert service.run(T0) == 1.0  # nothing scheduled

    make("0 * * * *")
    assert service.run(at(9, 59, 59.75)) == pytest.approx(0.25)
    assert service.run(at(9, 30)) == 1.0
    assert service.run(at(10, 0, 0.1)) == 1.0  # fired; the next tick is an hour away


@pytest.mark.django_db
def test_service__syncs_once_then_fires(declare: Callable[..., Any]) -> None:
    declare("tests.scheduler.nightly", "5 0 * * *")
    service = Scheduler(ServiceContext(using="default", worker_id="", clock=timezone.now))

    service.run(T0)
    Schedule.objects.update(kwargs={"label": "edited"})  # not the code's: a second sync would undo it
    service.run(at(0, 6, day=8))

    assert Schedule.objects.get().kwargs == {"label": "edited"}
    assert list(Job.objects.values_list("name", "kwargs")) == [("tests.scheduler.nightly", {"label": "edited"})]
