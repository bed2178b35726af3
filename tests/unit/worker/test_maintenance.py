"""worker/maintenance.py: each service runs when it is due, a broken one never stops the others,
and nothing runs while the database is away."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from django.utils import timezone

from django_jobs.worker.maintenance import Maintenance
from django_jobs.worker.reconnect import DatabaseLink


class Service:
    def __init__(self, name: str, delay: float = 10.0, error: Exception | None = None) -> None:
        self.name, self.delay, self.error = name, delay, error
        self.runs: list[datetime] = []

    def run(self, now: datetime) -> float:
        self.runs.append(now)
        if self.error:
            raise self.error
        return self.delay


def maintenance(*services: Service) -> Maintenance:
    return Maintenance(services, link=DatabaseLink("default", "w-test"), clock=timezone.now, worker_id="w-test")


def test_run_due__runs_each_service_again_only_once_its_delay_is_over() -> None:
    soon, later = Service("soon", delay=0.0), Service("later", delay=60.0)
    runner = maintenance(soon, later)

    runner.run_due()
    runner.run_due()

    assert (len(soon.runs), len(later.runs)) == (2, 1)
    assert runner.due[id(later)] > time.monotonic() + 50


def test_run_due__a_failing_service_is_logged_and_tried_again_later_while_the_others_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, fine = Service("broken", error=ValueError("boom")), Service("fine", delay=0.0)
    runner = maintenance(broken, fine)

    runner.run_due()
    runner.run_due()

    assert (len(broken.runs), len(fine.runs)) == (1, 2)
    assert "event=service_failed service=broken" in caplog.text


def test_run_due__nothing_runs_while_the_database_is_down() -> None:
    service = Service("any", delay=0.0)
    runner = maintenance(service)
    runner.link.down_until = time.monotonic() + 60

    runner.run_due()

    assert service.runs == []
