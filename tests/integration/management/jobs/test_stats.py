"""``jobs stats``: the overview's figures, as text and as JSON."""

from __future__ import annotations

import json

import pytest

from django_jobs.models import JobStatus, Pause, Worker
from tests.support.cli import jobs
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db


def test_stats__json_has_the_overviews_queues_workers_and_pauses() -> None:
    for status in (JobStatus.QUEUED, JobStatus.QUEUED, JobStatus.RETRYING):
        JobFactory(status=status, queue="reports")
    JobFactory(finished=True, queue="reports")
    Worker.objects.create(worker_id="w1", hostname="h1", pid=7, queues=["reports"], concurrency=2)
    Pause.objects.pause_queue("reports", reason="month end")

    data = json.loads(jobs("stats", "--json").out)

    (reports,) = [q for q in data["queues"] if q["queue"] == "reports"]
    assert (reports["queued"], reports["retrying"], reports["ready"]) == (2, 1, 3)
    assert reports["recent"]["succeeded"] == 1 and reports["paused"] is True
    assert [(w["worker_id"], w["queues"], w["silent"]) for w in data["workers"]] == [("w1", ["reports"], False)]
    assert [(p["value"], p["reason"]) for p in data["paused"]["queues"]] == [("reports", "month end")]
    assert data["stored_finished"]["counts"]["succeeded"] == 1
    limited = {u["target"]: u for u in data["limits"]}
    assert limited["tests.testapp.jobs.limited_pair"]["concurrency"] == "0 running, at most 2"


def test_stats__text_has_a_table_per_section() -> None:
    JobFactory(queue="reports")
    Pause.objects.pause_job("tests.testapp.jobs.record")

    out = jobs("stats").out

    assert out.startswith("Queues\nQUEUE")
    (row,) = [line for line in out.splitlines() if line.startswith("reports ")]
    assert row.split()[1:5] == ["1", "0", "0", "1"]
    assert "No worker is running" in out
    assert "job 'tests.testapp.jobs.record' since" in out
    assert "Finished jobs stored: succeeded 0, stopped 0, dead 0" in out
