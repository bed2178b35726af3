"""Enqueueing joins the caller's transaction: rows and wake-ups exist only once it commits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from django.db import transaction
from django.utils import timezone

from django_jobs.db import channel, tables
from django_jobs.models import Job, JobStatus
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)

POLL_SETTINGS = "tests.settings_slow_poll"


class Rollback(Exception):
    pass


def visible(conn: psycopg.Connection[Any], job_id: int) -> bool:
    row = conn.execute(f"SELECT count(*) FROM {tables.TABLE} WHERE id = %s", [job_id]).fetchone()
    return bool(row and row[0])


def notifications_until_marker(conn: psycopg.Connection[Any]) -> list[str]:
    """Payloads on the jobs channel up to a marker this connection sends now (in commit order)."""
    conn.execute("SELECT pg_notify(%s, 'marker')", [channel.CHANNEL])
    payloads: list[str] = []
    for notify in conn.notifies(timeout=10):
        if notify.payload == "marker":
            return payloads
        payloads.append(notify.payload)
    pytest.fail(f"no marker notification within 10 s (got {payloads})")


def test_enqueue__is_invisible_to_other_connections_until_commit(second_connection: Any) -> None:
    with transaction.atomic():
        job = jobs.record.enqueue("in a transaction")
        assert Job.objects.filter(pk=job.pk).exists()  # the enqueuer sees its own row
        assert not visible(second_connection, job.pk)

    assert visible(second_connection, job.pk)


def test_enqueue__rolled_back_never_runs(run_worker: Any) -> None:
    with pytest.raises(Rollback):
        with transaction.atomic():
            job = jobs.record.enqueue("rolled back")
            raise Rollback

    worker = run_worker()

    assert worker.claimed_total == 0
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not SideEffect.objects.exists()


def test_enqueue__committed_inside_atomic_runs(run_worker: Any) -> None:
    with transaction.atomic():
        job = jobs.record.enqueue("committed")

    run_worker()

    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED
    assert list(SideEffect.objects.values_list("label", flat=True)) == ["committed"]


def test_notify__is_sent_at_commit_and_never_for_a_rollback(second_connection: Any) -> None:
    second_connection.execute(f"LISTEN {channel.CHANNEL}")

    with pytest.raises(Rollback):
        with transaction.atomic():
            jobs.record.using(queue="rolled-back").enqueue()
            raise Rollback
    with transaction.atomic():
        jobs.record.using(queue="emails").enqueue()
        # Not yet: NOTIFY is delivered when the transaction that sent it commits.
        assert notifications_until_marker(second_connection) == []

    assert notifications_until_marker(second_connection) == ["emails 0"]


def test_notify__one_per_queue_for_a_batch(second_connection: Any) -> None:
    second_connection.execute(f"LISTEN {channel.CHANNEL}")

    jobs.record.enqueue_many([["a"], ["b"], ["c"]])

    assert notifications_until_marker(second_connection) == ["default 0"]


@pytest.mark.parametrize("count", [1, 3], ids=["enqueue", "enqueue_many"])
def test_notify__a_delayed_enqueue_announces_when_it_falls_due(second_connection: Any, count: int) -> None:
    # Idle workers wake at that moment instead of at their next poll (worker.listener.Listener).
    second_connection.execute(f"LISTEN {channel.CHANNEL}")
    delayed = jobs.record.using(queue="later", delay=dt.timedelta(seconds=30))

    created = delayed.enqueue_many([[str(i)] for i in range(count)]) if count > 1 else [delayed.enqueue()]

    (payload,) = notifications_until_marker(second_connection)
    queue, due = payload.split(" ")
    assert queue == "later"
    assert abs(float(due) - created[0].run_at.timestamp()) < 0.001


@pytest.mark.subprocess
def test_notify__wakes_an_idle_worker_long_before_its_poll_interval(
    second_connection: Any, worker_process: Any
) -> None:
    from tests.settings_slow_poll import POLL_INTERVAL

    worker = worker_process(
        "--concurrency", "1", "--no-scheduler", env={"DJANGO_SETTINGS_MODULE": POLL_SETTINGS}
    )
    wait_until(
        lambda: second_connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND query = %s", [f"LISTEN {channel.CHANNEL}"]
        ).fetchone()[0] == 1,
        timeout=30,
        message=lambda: f"the worker to LISTEN; {worker.describe()}",
    )

    def run_one(label: str) -> float:
        with transaction.atomic():
            job = jobs.record.enqueue(label)
        committed = timezone.now()
        wait_until(
            lambda: Job.objects.filter(pk=job.pk, status=JobStatus.SUCCEEDED).exists(),
            timeout=POLL_INTERVAL / 2,
            message=lambda: f"job {label} to run; {worker.describe()}",
        )
        started = Job.objects.get(pk=job.pk).started_at
        return (started - committed).total_seconds()

    # The first job also flushes out the wake-up the worker gives itself when it starts listening.
    run_one("warm-up")
    # An idle worker also wakes every few seconds for its maintenance services, so a single quick
    # pick-up could be luck; several in a row can't be.
    latencies = [run_one(f"job {i}") for i in range(5)]

    assert max(latencies) < 2.0, latencies
    assert worker.proc.poll() is None, worker.describe()
    assert worker.stop() == 0, worker.describe()
