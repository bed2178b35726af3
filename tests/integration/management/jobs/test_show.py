"""``jobs show ID``: a job's fields, arguments, every attempt with its traceback, and why a waiting
job isn't running."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_jobs.models import Job, JobStatus, Pause
from tests.support.cli import jobs
from tests.support.factories import JobFactory
from tests.testapp.jobs import fail_always


def _clock(hours: int) -> Callable[[], datetime]:
    moment = timezone.now() + timedelta(hours=hours)
    return lambda: moment


@pytest.mark.django_db(transaction=True)
def test_show__a_dead_job_has_every_attempt_with_its_traceback(run_worker: Any) -> None:
    job = fail_always.enqueue("label-x")
    for hours in (1, 2, 3):  # each attempt's retry falls due before the next worker's clock
        run_worker(clock=_clock(hours), worker_id=f"w{hours}")
    assert Job.objects.get(pk=job.pk).status == JobStatus.DEAD

    ran = jobs("show", job.pk)

    assert ran.code == 0, ran.err
    assert f"Job #{job.pk}" in ran.out and "tests.testapp.jobs.fail_always" in ran.out
    assert "Attempts:        3 of 3" in ran.out
    assert '"label-x"' in ran.out  # the positional arguments, as JSON
    for attempt in (1, 2, 3):
        assert f"Attempt {attempt}: failed on worker w{attempt}" in ran.out
    assert ran.out.count("Traceback (most recent call last):") == 3
    assert "Why isn't it running?" not in ran.out


@pytest.mark.django_db
def test_show__a_waiting_job_says_what_holds_it() -> None:
    job = JobFactory(queue="reports")
    Pause.objects.pause_queue("reports", reason="deploy")

    ran = jobs("show", f"#{job.pk}")

    assert "Why isn't it running?" in ran.out
    assert "Its queue 'reports' is paused" in ran.out and "[paused_queue]" in ran.out
    assert "No live worker serves the queue 'reports'" in ran.out


@pytest.mark.django_db
def test_show__json_has_the_row_the_history_and_the_diagnosis() -> None:
    waiting = JobFactory(args=[1, {"sku": "A-1"}])
    dead = JobFactory(
        status=JobStatus.DEAD,
        history=[{"event": "dead-lettered", "at": timezone.now().isoformat(), "note": "retired"}],
    )

    shown = json.loads(jobs("show", waiting.pk, "--json").out)
    assert (shown["id"], shown["args"], shown["status"]) == (waiting.pk, [1, {"sku": "A-1"}], "queued")
    assert "no_worker" in [r["code"] for r in shown["diagnosis"]]

    shown = json.loads(jobs("show", dead.pk, "--json").out)
    assert shown["history"][0]["note"] == "retired"
    assert "diagnosis" not in shown
    assert "dead-lettered at" in jobs("show", dead.pk).out


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["999999"], "No job has the id #999999."),
        (["abc"], "'abc' is not a job id"),
        (["0"], "'0' is not a job id"),
        ([], "the following arguments are required: ID"),
    ],
)
def test_show__bad_id_exits_2(args: list[str], says: str) -> None:
    ran = jobs("show", *args)

    assert (ran.code, says in ran.err) == (2, True), ran
