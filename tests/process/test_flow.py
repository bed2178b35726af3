"""Flow control with real ``runjobs`` processes: the limits hold across workers, crashes and
changes. Job bodies record when they started and ended (testapp Span rows); every check is made
on those, never on timing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from django_jobs.models import Job, JobStatus, Limit
from tests.support.procs import WorkerProcess, wait_until
from tests.testapp import jobs
from tests.testapp.models import SideEffect, Span

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

FAST = {"HEARTBEAT_INTERVAL": 0.2, "RESCUE_AFTER": 2.0, "STOP_GRACE": 1.0, "POLL_INTERVAL": 0.5}


@pytest.fixture
def workers(worker_process: Any) -> Any:
    def start(count: int, concurrency: int = 4, prefix: str = "flow") -> list[WorkerProcess]:
        env = {"DJANGO_JOBS_TEST_SETTINGS": json.dumps(FAST)}
        return [
            worker_process("--concurrency", str(concurrency), "--no-scheduler", "--worker-id", f"{prefix}-{n}", env=env)
            for n in range(count)
        ]

    return start


def most_at_once(spans: list[Span]) -> int:
    """The largest number of spans that overlap at one moment (a sweep over starts and ends)."""
    events: list[tuple[datetime, int]] = []
    for span in spans:
        assert span.ended_at is not None, f"job #{span.job_id} never finished its body"
        events += [(span.started_at, 1), (span.ended_at, -1)]
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    peak = current = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def all_succeeded(created: list[Job], timeout: float = 120) -> None:
    ids = [j.id for j in created]
    wait_until(
        lambda: Job.objects.filter(id__in=ids, status=JobStatus.SUCCEEDED).count() == len(ids),
        timeout=timeout,
        message=lambda: f"every job to succeed: {Job.objects.filter(id__in=ids).exclude(status='succeeded').count()} left",
    )


def test_concurrency__four_workers_never_run_more_than_the_limit(workers: Any) -> None:
    created = jobs.limited_pair.enqueue_many([[0.05] for _ in range(100)])
    workers(4, concurrency=4)
    all_succeeded(created)

    spans = list(Span.objects.filter(key="pair"))
    assert len(spans) == 100
    assert most_at_once(spans) == 2  # reached, and never 3
    assert set(Job.objects.filter(id__in=[j.id for j in created]).values_list("attempts", flat=True)) == {1}


def test_concurrency__per_key_each_key_reaches_its_limit_and_never_more(workers: Any) -> None:
    created = jobs.sync_account.enqueue_many([[key, 0.05] for key in ("a", "b") for _ in range(30)])
    workers(3, concurrency=4)
    all_succeeded(created)

    for key in ("account:a", "account:b"):
        assert most_at_once(list(Span.objects.filter(key=key))) == 1
    # The two keys did run side by side: a per-key limit, not a global one.
    assert most_at_once(list(Span.objects.all())) == 2


def test_rate__never_more_starts_in_any_window_than_the_rate(workers: Any) -> None:
    created = jobs.rated.enqueue_many([[n] for n in range(30)])
    workers(3, concurrency=4)
    all_succeeded(created, timeout=60)

    starts = sorted(Job.objects.filter(id__in=[j.id for j in created]).values_list("started_at", flat=True))
    # "At most 5 in any 1-second window": any 6 consecutive starts span at least a second.
    crowded = [(a, b) for a, b in zip(starts, starts[5:]) if b - a < timedelta(seconds=1)]
    assert crowded == []
    assert len(starts) == 30


def test_crash__a_rescued_job_gives_its_slot_to_the_next(workers: Any) -> None:
    holder = jobs.sync_account.enqueue("solo", 60)
    waiting = jobs.sync_account.enqueue("solo", 0)
    (doomed,) = workers(1, concurrency=2, prefix="doomed")
    wait_until(lambda: Span.objects.filter(job_id=holder.id).exists(), message="the holder to start")
    doomed.kill()
    assert Job.objects.get(id=waiting.id).status == JobStatus.QUEUED  # held, not started

    workers(1, concurrency=2, prefix="survivor")
    wait_until(lambda: Job.objects.get(id=waiting.id).status == JobStatus.SUCCEEDED, timeout=30,
               message="the waiting job to get the slot after rescue")
    holder.refresh_from_db()
    assert holder.history[0]["outcome"] == "lost"


def test_operator_limit__applies_to_live_workers_without_a_restart(workers: Any) -> None:
    before = [jobs.call_partner.enqueue(0.3) for _ in range(12)]
    live = workers(2, concurrency=3)
    all_succeeded(before)
    assert most_at_once(list(Span.objects.filter(job_id__in=[j.id for j in before]))) >= 2

    # What the admin's form calls.
    Limit.objects.set("queue", "partner-api", concurrency=1, note="partner asked us to slow down")
    for worker in live:
        worker.wait_for_output("queues=partner-api")
    after = [jobs.call_partner.enqueue(0.1) for _ in range(8)]
    all_succeeded(after)
    assert most_at_once(list(Span.objects.filter(job_id__in=[j.id for j in after]))) == 1


def test_sequences__each_key_runs_in_id_order_one_at_a_time(workers: Any) -> None:
    created = [jobs.apply_webhook.enqueue(f"c{n % 5}", n) for n in range(50)]
    workers(3, concurrency=4)
    all_succeeded(created)

    for key in {f"customer:c{n}" for n in range(5)}:
        spans = sorted(Span.objects.filter(key=key), key=lambda s: s.job_id)
        assert len(spans) == 10
        for earlier, later in zip(spans, spans[1:]):
            assert later.started_at >= earlier.ended_at, f"{key}: #{later.job_id} overlapped #{earlier.job_id}"


def test_sequences__a_dead_job_blocks_its_key_until_retried(workers: Any) -> None:
    first = jobs.apply_webhook.enqueue("c1", 1)
    broken = jobs.apply_webhook.enqueue("c1", 2, fail=True)
    third = jobs.apply_webhook.enqueue("c1", 3)
    workers(2, concurrency=2)
    wait_until(lambda: Job.objects.get(id=broken.id).status == JobStatus.DEAD, message="the broken job to die")
    # A job of another sequence, enqueued later, runs; the blocked one doesn't.
    other = jobs.apply_webhook.enqueue("c2", 1)
    all_succeeded([other])
    assert Job.objects.get(id=third.id).status == JobStatus.QUEUED
    assert Job.objects.get(id=first.id).status == JobStatus.SUCCEEDED

    SideEffect.objects.create(job_id=0, label="fixed")
    Job.objects.filter(id=broken.id).retry()
    all_succeeded([broken, third])
    assert Span.objects.get(job_id=third.id).started_at >= Span.objects.get(job_id=broken.id).ended_at
