"""Duplicates of a unique_key: on_duplicate="replace", debounce and unique_while="waiting"
(enqueueing.py, db/inserts.py), alone and with 20 enqueues racing on one key."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from django_jobs import job as register_job
from django_jobs.models import Job, JobStatus
from django_jobs.signals import job_enqueued
from tests.integration.test_transactions import notifications_until_marker
from tests.support.procs import database_url, wait_lock_waiter
from tests.testapp import jobs

pytestmark = pytest.mark.django_db

THIRTY = dt.timedelta(seconds=30)
RACERS = 20


@register_job(name="tests.duplicates.per_account", concurrency=1, concurrency_key="account-{account}")
def per_account(account: str) -> None:
    pass


@register_job(name="tests.duplicates.in_sequence", sequence_key="group-{group}")
def in_sequence(group: str, label: str = "") -> None:
    pass


def replace(key: str = "k", **options: Any) -> Any:
    return jobs.record.using(unique_key=key, on_duplicate="replace", **options)


def start(job: Job) -> None:
    """Mark ``job`` running, as a claim does (started_at is what ends "waiting" for good)."""
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=1, started_at=timezone.now(), worker_id="w")


def keyed(key: str = "k") -> list[tuple[str, list[Any], dict[str, Any]]]:
    return list(Job.objects.filter(unique_key=key).order_by("pk").values_list("status", "args", "kwargs"))


# -- on_duplicate="replace" ------------------------------------------------------------------


def test_replace__a_queued_holder_takes_the_new_arguments_and_run_at() -> None:
    first = replace(delay=dt.timedelta(hours=1)).enqueue("first")
    when = timezone.now() + dt.timedelta(minutes=5)

    second = replace(run_at=when).enqueue("second")

    assert second.pk == first.pk
    assert (second.args, second.run_at, second.status) == (["second"], when, JobStatus.QUEUED)
    row = Job.objects.get()
    assert (row.args, row.run_at, row.created_at) == (["second"], when, first.created_at)


def test_replace__a_retrying_holder_is_replaced_too() -> None:
    first = replace().enqueue("first")
    Job.objects.filter(pk=first.pk).update(status=JobStatus.RETRYING, attempts=1, started_at=timezone.now(),
                                           run_at=timezone.now() + dt.timedelta(hours=1))

    again = replace().enqueue("again")

    assert again.pk == first.pk
    assert (again.args, again.status, again.attempts) == (["again"], JobStatus.RETRYING, 1)
    assert again.run_at <= timezone.now()


def test_replace__a_running_holder_is_returned_unchanged() -> None:
    first = replace().enqueue("first")
    start(first)

    with transaction.atomic():
        again = replace().enqueue("again")
        after = jobs.record.enqueue("after")  # the transaction is still usable

    assert again.pk == first.pk and again.args == ["first"] and again.status == JobStatus.RUNNING
    assert keyed() == [(JobStatus.RUNNING, ["first"], {})]
    assert Job.objects.filter(pk=after.pk).exists()


def test_replace__a_finished_holder_is_left_alone_and_a_new_job_written() -> None:
    first = replace().enqueue("first")
    Job.objects.filter(pk=first.pk).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())

    second = replace().enqueue("second")

    assert second.pk != first.pk
    assert keyed() == [(JobStatus.SUCCEEDED, ["first"], {}), (JobStatus.QUEUED, ["second"], {})]


def test_replace__sends_job_enqueued_for_the_insert_only() -> None:
    seen: list[tuple[int, list[Any]]] = []

    def receiver(sender: Any, job: Job, **kwargs: Any) -> None:
        seen.append((job.pk, list(job.args)))

    job_enqueued.connect(receiver)
    try:
        first = replace().enqueue("first")
        replace().enqueue("second")
    finally:
        job_enqueued.disconnect(receiver)

    assert seen == [(first.pk, ["first"])]


def test_replace__recomputes_the_flow_keys_from_the_new_arguments() -> None:
    first = per_account.using(unique_key="acct", on_duplicate="replace").enqueue("a")

    again = per_account.using(unique_key="acct", on_duplicate="replace").enqueue(account="b")

    assert again.pk == first.pk
    assert Job.objects.values_list("args", "kwargs", "concurrency_key").get() == ([], {"account": "b"}, "account-b")


def test_replace__a_holder_in_another_sequence_is_returned_unchanged() -> None:
    # Moved into sequence "b", the job would overtake jobs enqueued there before it.
    options = {"unique_key": "s", "on_duplicate": "replace"}
    first = in_sequence.using(**options).enqueue("a", "1")

    other = in_sequence.using(**options).enqueue("b", "2")
    same = in_sequence.using(**options).enqueue("a", "3")

    assert other.pk == same.pk == first.pk
    assert other.args == ["a", "1"]
    assert Job.objects.values_list("args", "sequence_key").get() == (["a", "3"], "group-a")


def test_replace__enqueue_many_writes_the_last_item_and_returns_it_for_each() -> None:
    created = replace().enqueue_many([["a"], ["b"], ["c"]])

    assert [j.pk for j in created] == [created[0].pk] * 3
    assert keyed() == [(JobStatus.QUEUED, ["c"], {})]
    again = replace().enqueue_many([{"label": "d"}, {"label": "e"}])
    assert [j.pk for j in again] == [created[0].pk] * 2
    assert keyed() == [(JobStatus.QUEUED, [], {"label": "e"})]


# -- debounce ------------------------------------------------------------------------------


def test_debounce__the_first_enqueue_is_due_debounce_later() -> None:
    before = timezone.now()

    created = jobs.record.using(unique_key="hook", debounce=THIRTY).enqueue("first")

    assert before + THIRTY <= created.run_at <= timezone.now() + THIRTY
    assert Job.objects.get().run_at == created.run_at


def test_debounce__each_enqueue_pushes_the_run_back_and_brings_its_arguments() -> None:
    debounced = jobs.record.using(unique_key="hook", debounce=THIRTY)
    first = debounced.enqueue("first")
    before = timezone.now()

    second = debounced.enqueue("second")

    assert second.pk == first.pk
    assert second.args == ["second"]
    assert second.run_at >= before + THIRTY > first.run_at


def test_debounce__never_brings_a_later_run_forward() -> None:
    later = timezone.now() + dt.timedelta(hours=1)
    first = jobs.record.using(unique_key="hook", run_at=later).enqueue("scheduled")

    again = jobs.record.using(unique_key="hook", debounce=THIRTY).enqueue("debounced")

    assert again.pk == first.pk
    assert (again.args, again.run_at) == (["debounced"], later)


def test_debounce__in_a_transaction_that_rolls_back_leaves_the_job_as_it_was() -> None:
    debounced = jobs.record.using(unique_key="hook", debounce=THIRTY)
    first = debounced.enqueue("first")

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            debounced.enqueue("rolled back")
            raise RuntimeError

    assert Job.objects.values_list("args", "run_at").get() == (["first"], first.run_at)


# -- unique_while="waiting" -------------------------------------------------------------------


def waiting(key: str = "k", **options: Any) -> Any:
    return jobs.record.using(unique_key=key, unique_while="waiting", **options)


def test_unique_while_waiting__one_job_may_wait_beside_a_running_one() -> None:
    running = waiting().enqueue("running")
    start(running)

    queued = waiting().enqueue("once more")
    again = waiting().enqueue("and again")

    assert queued.pk != running.pk
    assert again.pk == queued.pk
    assert keyed() == [(JobStatus.RUNNING, ["running"], {}), (JobStatus.QUEUED, ["once more"], {})]


def test_unique_while_waiting__with_replace_the_waiting_job_takes_the_arguments() -> None:
    running = waiting(on_duplicate="replace").enqueue("running")
    start(running)

    queued = waiting(on_duplicate="replace").enqueue("second")
    again = waiting(on_duplicate="replace").enqueue("third")

    assert again.pk == queued.pk != running.pk
    assert keyed() == [(JobStatus.RUNNING, ["running"], {}), (JobStatus.QUEUED, ["third"], {})]


def test_unique_while_waiting__a_started_job_may_come_back_beside_the_waiting_one() -> None:
    # A retry, Retry() or a hand-back at shutdown puts a started job back to retrying or queued
    # (the worker's outcome write): the waiting index never counts it again, so that write can't
    # collide with the job waiting after it.
    running = waiting().enqueue("running")
    start(running)
    queued = waiting().enqueue("waiting")

    Job.objects.filter(pk=running.pk).update(status=JobStatus.QUEUED, attempts=0)

    assert keyed() == [(JobStatus.QUEUED, ["running"], {}), (JobStatus.QUEUED, ["waiting"], {})]
    assert waiting().enqueue("third").pk == queued.pk


def test_unique_while_waiting__scopes_are_apart_from_the_default_one() -> None:
    # Give every enqueue of a key the same unique_while: each scope has its own index.
    default = jobs.record.using(unique_key="k").enqueue("default")

    other = waiting().enqueue("waiting")

    assert other.pk != default.pk
    assert jobs.record.using(unique_key="k").enqueue("again").pk == default.pk
    assert list(Job.objects.order_by("pk").values_list("unique_while", flat=True)) == ["active", "waiting"]


def test_unique_while_waiting__an_operator_retry_respects_the_waiting_scope() -> None:
    stopped = waiting().enqueue("stopped")
    stopped.stop()
    queued = waiting().enqueue("queued")

    assert stopped.retry() is False  # another job is waiting with its key

    start(queued)
    assert stopped.retry() is True  # beside a running one is fine
    assert sorted(s for s, _, _ in keyed()) == [JobStatus.QUEUED, JobStatus.RUNNING]


# -- 20 enqueues racing on one key --------------------------------------------------------------


def race(target: Callable[[int], Job]) -> list[Job]:
    """Run ``target(i)`` for i in range(RACERS) at once, each thread on its own connection."""
    barrier = threading.Barrier(RACERS)
    results: list[Any] = [None] * RACERS

    def run(i: int) -> None:
        try:
            connection.ensure_connection()  # connected before the barrier, so they start together
            barrier.wait(timeout=30)
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test thread
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a racer is still running after 60 s"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@pytest.mark.django_db(transaction=True)
def test_race__return_gives_every_racer_the_one_job() -> None:
    returned = race(lambda i: jobs.record.using(unique_key="race").enqueue(str(i)))

    (row,) = Job.objects.filter(unique_key="race")
    assert {job.pk for job in returned} == {row.pk}
    assert row.status == JobStatus.QUEUED and row.args[0] in {str(i) for i in range(RACERS)}
    assert sum(job.args == row.args for job in returned) >= 1


@pytest.mark.django_db(transaction=True)
def test_race__replace_leaves_one_job_with_one_racer_s_arguments_and_run_at() -> None:
    base = timezone.now() + dt.timedelta(hours=1)

    returned = race(lambda i: replace("race", run_at=base + dt.timedelta(seconds=i)).enqueue(str(i)))

    (row,) = Job.objects.filter(unique_key="race")
    assert {job.pk for job in returned} == {row.pk}
    assert row.status == JobStatus.QUEUED
    # Arguments and run_at are replaced together: both are the same racer's.
    (label,) = row.args
    assert row.run_at == base + dt.timedelta(seconds=int(label))


@pytest.mark.django_db(transaction=True)
def test_race__debounce_leaves_one_job_due_debounce_after_the_last_enqueue() -> None:
    before = timezone.now()

    returned = race(lambda i: jobs.record.using(unique_key="race", debounce=THIRTY).enqueue(str(i)))

    after = timezone.now()
    (row,) = Job.objects.filter(unique_key="race")
    assert {job.pk for job in returned} == {row.pk}
    assert row.status == JobStatus.QUEUED and row.args[0] in {str(i) for i in range(RACERS)}
    # Never pulled earlier by an enqueue that reached the row late: at least what any racer saw.
    assert row.run_at >= max(job.run_at for job in returned)
    assert before + THIRTY <= row.run_at <= after + THIRTY


@pytest.mark.django_db(transaction=True)
def test_race__unique_while_waiting_adds_one_queued_job_beside_the_running_one() -> None:
    running = waiting("race").enqueue("running")
    start(running)

    returned = race(lambda i: waiting("race").enqueue(str(i)))

    rows = list(Job.objects.filter(unique_key="race").order_by("pk"))
    assert [r.status for r in rows] == [JobStatus.RUNNING, JobStatus.QUEUED]
    assert {job.pk for job in returned} == {rows[1].pk}


@pytest.mark.django_db(transaction=True)
def test_race__replace_with_unique_while_waiting_beside_a_running_one() -> None:
    running = waiting("race", on_duplicate="replace").enqueue("running")
    start(running)

    returned = race(lambda i: waiting("race", on_duplicate="replace").enqueue(str(i)))

    rows = list(Job.objects.filter(unique_key="race").order_by("pk"))
    assert [(r.status, r.args) for r in rows][0] == (JobStatus.RUNNING, ["running"])
    assert [r.status for r in rows[1:]] == [JobStatus.QUEUED]
    assert {job.pk for job in returned} == {rows[1].pk}


@pytest.mark.django_db(transaction=True)
def test_race__a_replace_waiting_on_a_claim_returns_the_job_it_started_unchanged(second_connection: Any) -> None:
    """The holder is being claimed (its row locked, not committed) when a replace arrives."""
    holder = replace("claimed").enqueue("before")
    claim = psycopg.connect(database_url(), autocommit=False)
    claim.execute(
        "UPDATE django_jobs_job SET status = 'running', attempts = 1, started_at = now() WHERE id = %s",
        [holder.pk],
    )
    results: dict[str, Any] = {}

    def enqueue() -> None:
        try:
            results["job"] = replace("claimed").enqueue("after")
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            results["job"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=enqueue, daemon=True)
    thread.start()
    try:
        wait_lock_waiter(second_connection, "%INSERT INTO%", "the replace to wait on the claim's row lock")
    finally:
        claim.commit()
        claim.close()
        thread.join(20)

    if isinstance(results["job"], BaseException):
        raise results["job"]
    assert results["job"].pk == holder.pk and results["job"].args == ["before"]
    assert keyed("claimed") == [(JobStatus.RUNNING, ["before"], {})]


@pytest.mark.django_db(transaction=True)
def test_replace__wakes_idle_workers_for_the_replaced_job(second_connection: Any) -> None:
    replace("notify", delay=dt.timedelta(hours=1)).enqueue("later")
    second_connection.execute("LISTEN django_jobs")

    replace("notify").enqueue("now")

    assert notifications_until_marker(second_connection) == ["default 0"]
