"""diagnose.py reading pauses and workers from the database."""

from __future__ import annotations

import pytest

from django_jobs.diagnose import Reason, diagnose
from django_jobs.models import Pause, Worker
from tests.support.factories import JobFactory


def codes(reasons: list[Reason]) -> list[str]:
    return [r.code for r in reasons]


@pytest.mark.django_db
def test_diagnose__reads_pauses_and_workers_from_the_database() -> None:
    j = JobFactory(queue="reports")
    Pause.objects.pause_queue("reports", reason="deploy")

    assert codes(diagnose(j)) == ["paused_queue", "no_worker"]

    Pause.objects.resume_queue("reports")
    Worker.objects.create(worker_id="w1", hostname="h", pid=1, queues=["reports"], concurrency=1)
    assert codes(diagnose(j)) == ["imminent"]
