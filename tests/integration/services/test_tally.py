"""services/tally.py: the finished-job tally, which only ever adds, and its compare-and-set mark."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from django_jobs.models import CounterMark, FinishedCounter, Job, JobStatus
from django_jobs.services import ServiceContext
from django_jobs.services import tally as counters
from django_jobs.services.tally import SETTLE, tally
from tests.conftest import connect
from tests.support.factories import JobFactory
from tests.support.procs import wait_until

T0 = timezone.now().replace(microsecond=0) - timedelta(days=1)


def counts() -> dict[tuple[str, str, str], int]:
    return {(c.queue, c.name, c.status): c.count for c in FinishedCounter.objects.all()}


def finished(status: str, at: Any, **fields: Any) -> Job:
    return JobFactory(status=status, finished_at=at, **fields)


@pytest.mark.django_db
def test_tally__the_first_one_only_starts_counting() -> None:
    finished("succeeded", T0 - timedelta(minutes=5))

    assert tally("default", now=T0) == 0

    assert counts() == {}
    assert counters.counted_until("default") == T0 - SETTLE


@pytest.mark.django_db
def test_tally__counts_what_finished_since_the_last_one_by_queue_name_and_status() -> None:
    tally("default", now=T0)
    start = T0 - SETTLE
    finished("succeeded", start + timedelta(seconds=1), queue="emails", name="a")
    finished("succeeded", start + timedelta(seconds=2), queue="emails", name="a")
    finished("dead", start + timedelta(seconds=3), queue="emails", name="a")
    finished("stopped", start + timedelta(seconds=4), queue="reports", name="b")
    finished("succeeded", start - timedelta(seconds=1), queue="emails", name="a")  # before counting
    JobFactory(status=JobStatus.RETRYING)  # not finished

    assert tally("default", now=T0 + timedelta(seconds=10)) == 4

    assert counts() == {
        ("emails", "a", "succeeded"): 2,
        ("emails", "a", "dead"): 1,
        ("reports", "b", "stopped"): 1,
    }


@pytest.mark.django_db
def test_tally__leaves_the_last_settle_seconds_for_the_next_tally() -> None:
    tally("default", now=T0)
    now = T0 + timedelta(minutes=1)
    finished("succeeded", now - SETTLE + timedelta(seconds=1), name="late")

    assert tally("default", now=now) == 0
    assert tally("default", now=now + timedelta(seconds=2)) == 1
    assert tally("default", now=now + timedelta(seconds=2)) == 0  # counted once only


@pytest.mark.django_db
def test_tally__pruning_and_retries_never_lower_a_counter() -> None:
    tally("default", now=T0)
    dead = finished("dead", T0 - SETTLE + timedelta(seconds=1), name="flaky")
    done = finished("succeeded", T0 - SETTLE + timedelta(seconds=1), name="flaky")
    tally("default", now=T0 + timedelta(seconds=5))

    Job.objects.filter(pk=done.pk).delete()  # pruned
    dead.retry(now=T0 + timedelta(seconds=6))  # back to queued
    Job.objects.filter(pk=dead.pk).update(
        status=JobStatus.DEAD, finished_at=T0 - SETTLE + timedelta(seconds=7)
    )
    tally("default", now=T0 + timedelta(seconds=10))

    # The retried job died twice: two deaths. The pruned success still counts.
    assert counts() == {("default", "flaky", "dead"): 2, ("default", "flaky", "succeeded"): 1}


@pytest.mark.django_db
def test_tally_service__runs_every_tally_interval() -> None:
    service = counters.Tally(ServiceContext(using="default", worker_id="w", clock=timezone.now))

    assert service.name == "tally"
    assert service.run(T0) == counters.TALLY_INTERVAL
    assert CounterMark.objects.get(key=counters.MARK).counted_until == T0 - SETTLE


@pytest.mark.django_db(transaction=True)
def test_tally__two_at_once_count_each_window_once(
    second_connection: psycopg.Connection[Any],
) -> None:
    tally("default", now=T0)
    finished("succeeded", T0 - SETTLE + timedelta(seconds=1), name="once")
    now = T0 + timedelta(seconds=10)
    # Another worker's tally is half-way: it has moved the mark and not committed yet.
    second_connection.execute("BEGIN")
    second_connection.execute(
        f"UPDATE {CounterMark._meta.db_table} SET counted_until = %s WHERE key = %s",
        [now - SETTLE, counters.MARK],
    )
    result: list[int] = []
    ours = threading.Thread(target=lambda: result.append(_tally_in_thread(now)))
    ours.start()

    def blocked_on_the_mark() -> bool:
        assert ours.is_alive(), f"our tally did not wait: {result}"
        # From a third connection: statistics views are frozen inside a transaction.
        with connect() as observer:
            row = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchone()
        return bool(row and row[0])

    wait_until(blocked_on_the_mark, message="our tally to wait for the other's row lock")
    second_connection.execute("COMMIT")  # the other tally commits (its counts are elsewhere)
    ours.join(timeout=10)

    assert result == [0]  # ours found the mark moved and counted nothing
    assert counts() == {}


def _tally_in_thread(now: Any) -> int:
    try:
        return tally("default", now=now)
    finally:
        connection.close()
