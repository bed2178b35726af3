"""diagnose.py: why a waiting job isn't running, decided from the job, pauses, workers and now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from django_jobs.diagnose import Reason, Upstream, waiting_on, why_not_running
from django_jobs.models import Job, Pause, Worker

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RESCUE_AFTER = 60.0
Reasons = list[Reason]


def job(**fields: Any) -> Job:
    fields.setdefault("name", "shop.sync")
    fields.setdefault("queue", "default")
    fields.setdefault("status", "queued")
    fields.setdefault("run_at", NOW - timedelta(seconds=1))
    return Job(**fields)


def worker(queues: list[str] | None = None, beat_ago: float = 1.0, **fields: Any) -> Worker:
    fields.setdefault("concurrency", 2)
    return Worker(
        worker_id=fields.pop("worker_id", "host:1"),
        hostname="host",
        pid=1,
        queues=queues or [],
        last_heartbeat=NOW - timedelta(seconds=beat_ago),
        **fields,
    )


def pause(kind: str, value: str, reason: str = "") -> Pause:
    return Pause(kind=kind, value=value, reason=reason, created_at=NOW - timedelta(hours=1))


def why(j: Job, pauses: Sequence[Pause] = (), workers: Sequence[Worker] | None = None) -> Reasons:
    workers = [worker()] if workers is None else workers
    return why_not_running(j, now=NOW, pauses=pauses, workers=workers, rescue_after=RESCUE_AFTER)


def codes(reasons: list[Reason]) -> list[str]:
    return [r.code for r in reasons]


def test_why__a_due_job_with_a_free_worker_should_start_any_moment() -> None:
    assert why(job()) == [Reason("imminent", "Nothing holds it back: it should start any moment.")]


def test_why__a_job_due_later_says_when() -> None:
    (reason,) = why(job(run_at=NOW + timedelta(hours=3)))

    assert reason.code == "scheduled"
    assert reason.message == "It is scheduled to run at 2025-03-01 15:00:00 UTC (in 3\xa0hours)."


def test_why__a_retrying_job_in_backoff_shows_the_last_error_and_the_next_attempt() -> None:
    j = job(
        status="retrying",
        attempts=2,
        max_attempts=5,
        last_error="ConnectionError: refused",
        run_at=NOW + timedelta(minutes=4),
    )

    (reason,) = why(j)

    assert reason.code == "backoff"
    assert reason.message == (
        "Attempt 2 of 5 failed: ConnectionError: refused. The next attempt is due at "
        "2025-03-01 12:04:00 UTC (in 4\xa0minutes)."
    )


def test_why__a_retrying_job_whose_backoff_is_over_is_imminent() -> None:
    assert codes(why(job(status="retrying", attempts=1, max_attempts=3))) == ["imminent"]


def test_why__a_paused_queue_or_name_says_since_when_and_why() -> None:
    pauses = [
        pause("queue", "default", "migrating"),
        pause("name", "shop.sync"),
        pause("queue", "other"),
        pause("name", "shop.other"),
    ]

    reasons = why(job(), pauses=pauses)

    assert [(r.code, r.message) for r in reasons] == [
        ("paused_queue", "Its queue 'default' is paused since 2025-03-01 11:00 UTC (migrating)."),
        ("paused_name", "Jobs named 'shop.sync' are paused since 2025-03-01 11:00 UTC."),
    ]


def test_why__no_worker_at_all() -> None:
    (reason,) = why(job(queue="reports"), workers=[])

    assert reason.code == "no_worker"
    assert reason.message == (
        "No live worker serves the queue 'reports'. Start one with `manage.py runjobs --queue "
        "reports`, or without --queue to serve every queue."
    )


def test_why__workers_of_other_queues_do_not_count_and_are_named() -> None:
    (reason,) = why(job(queue="reports"), workers=[worker(["default", "emails"])])

    assert reason.code == "no_worker"
    assert "(1 live worker(s) serve only default, emails)" in reason.message


def test_why__a_worker_silent_for_longer_than_rescue_after_is_gone() -> None:
    assert codes(why(job(), workers=[worker(beat_ago=RESCUE_AFTER + 1)])) == ["no_worker"]
    assert codes(why(job(), workers=[worker(beat_ago=RESCUE_AFTER)])) == ["imminent"]


def test_why__a_worker_serving_every_queue_or_this_one_counts() -> None:
    assert codes(why(job(queue="reports"), workers=[worker([])])) == ["imminent"]
    assert codes(why(job(queue="reports"), workers=[worker(["reports"])])) == ["imminent"]


def test_why__every_serving_worker_busy() -> None:
    busy = worker(["default"], concurrency=2, running=[1, 2])
    free_elsewhere = worker(["emails"], worker_id="host:2", concurrency=2, running=[])

    (reason,) = why(job(), workers=[busy, free_elsewhere])

    assert reason.code == "busy"
    assert "is busy (2 of 2 slots)" in reason.message
    assert codes(why(job(), workers=[busy, worker(worker_id="host:3")])) == ["imminent"]


def test_why__reasons_add_up() -> None:
    j = job(run_at=NOW + timedelta(minutes=1), queue="reports")

    assert codes(why(j, pauses=[pause("queue", "reports")], workers=[])) == [
        "scheduled",
        "paused_queue",
        "no_worker",
    ]


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("running", "It is running (attempt 1, on worker host:9)."),
        ("dead", "It has finished (dead); retry it to run it again."),
        ("succeeded", "It has finished (succeeded)."),
    ],
)
def test_why__a_job_not_waiting_says_what_it_is_doing(status: str, message: str) -> None:
    j = job(status=status, attempts=1, worker_id="host:9")

    assert why(j) == [Reason("not_waiting", message)]


# -- workflows ---------------------------------------------------------------------------------------


def test_waiting_on__names_each_upstream_job_not_succeeded_with_when_it_runs_next() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    pending = [Upstream(12, "running", now), Upstream(13, "retrying", now + timedelta(seconds=40))]

    reason = waiting_on(3, pending, now)

    assert reason.code == "upstream"
    assert reason.message == "Waiting on 2 of 3 upstream jobs: #12 (running), #13 (retrying, next attempt in 40 s)."


def test_waiting_on__counts_the_upstream_jobs_past_the_first_ten() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    pending = [Upstream(n, "queued", now) for n in range(1, 26)]

    assert waiting_on(10_000, pending, now).message.endswith("#10 (queued) and 15 more.")
