"""Enqueueing joins the caller's transaction: rows and wake-ups exist only once it commits."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from django.db import transaction

from django_jobs.db import channel, tables
from django_jobs.models import Job, JobStatus
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)


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
