"""db/claims.py: the claim (SKIP LOCKED, order, filters, its index) and fenced outcome writes."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone

from django_jobs.db import channel, claims, tables
from django_jobs.db.connection import WORKER_SESSION
from django_jobs.lifecycle import Transition
from django_jobs.models import Job, JobStatus, Pause
from tests.conftest import connect
from tests.support.factories import JobFactory
from tests.support.procs import wait_lock_waiter

pytestmark = pytest.mark.django_db


def claim(**options: Any) -> list[dict[str, Any]]:
    options.setdefault("worker_id", "w1")
    options.setdefault("limit", 10)
    options.setdefault("now", timezone.now())
    return claims.claim("default", **options)


def claim_sql(filter_queues: bool) -> str:
    return claims.claim_sql("default", filter_queues=filter_queues)


def claimed_ids(**options: Any) -> list[int]:
    return sorted(row["id"] for row in claim(**options))


# -- SKIP LOCKED -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_claim__skips_rows_locked_by_another_transaction(second_connection: Any) -> None:
    a, locked, c = JobFactory.create_batch(3)
    with connection.cursor() as cursor:
        # Without SKIP LOCKED the claim would wait on the lock: make that a failure, not a hang.
        cursor.execute("SET lock_timeout = '5s'")
    try:
        with second_connection.transaction():
            second_connection.execute(f"SELECT id FROM {tables.TABLE} WHERE id = %s FOR UPDATE", [locked.pk])

            assert claimed_ids() == [a.pk, c.pk]
            assert Job.objects.get(pk=locked.pk).status == JobStatus.QUEUED

        # The lock is gone with the other transaction: the row is claimable again.
        assert claimed_ids() == [locked.pk]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


# -- what is claimed, and in which order -----------------------------------------------------


def test_claim__order_is_priority_desc_then_run_at_then_id() -> None:
    now = timezone.now()
    old_low = JobFactory(priority=0, run_at=now - timedelta(seconds=10))
    late_high = JobFactory(priority=5, run_at=now - timedelta(seconds=1))
    early_high = JobFactory(priority=5, run_at=now - timedelta(seconds=5))
    old_low_twin = JobFactory(priority=0, run_at=now - timedelta(seconds=10))
    oldest_negative = JobFactory(priority=-1, run_at=now - timedelta(days=1))

    order = [claim(limit=1, now=now)[0]["id"] for _ in range(5)]

    assert order == [early_high.pk, late_high.pk, old_low.pk, old_low_twin.pk, oldest_negative.pk]
    assert claim(now=now) == []


def test_claim__limit_takes_the_first_rows_in_claim_order() -> None:
    jobs = [JobFactory(priority=p) for p in (1, 3, 2, 0)]

    assert claimed_ids(limit=2) == sorted([jobs[1].pk, jobs[2].pk])


def test_claim__a_job_due_in_the_future_is_not_claimed_until_then() -> None:
    now = timezone.now()
    later = JobFactory(run_at=now + timedelta(seconds=30))

    assert claim(now=now) == []
    assert claimed_ids(now=now + timedelta(seconds=30)) == [later.pk]


@pytest.mark.parametrize("status", [JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.STOPPED, JobStatus.DEAD])
def test_claim__only_queued_and_retrying_jobs_are_claimed(status: JobStatus) -> None:
    queued = JobFactory(status=JobStatus.QUEUED)
    retrying = JobFactory(status=JobStatus.RETRYING, attempts=1)
    JobFactory(status=status, attempts=1)

    assert claimed_ids() == sorted([queued.pk, retrying.pk])


def test_claim__marks_rows_running_for_the_worker_and_counts_the_attempt() -> None:
    now = timezone.now()
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    job = JobFactory(args=[1], kwargs={"b": 2}, name="tests.add", queue="q", max_attempts=4, timeout=2.5,
                     status=JobStatus.RETRYING, attempts=1, run_at=now, traceparent=traceparent, tracestate="k=v")

    (row,) = claim(worker_id="host:1", now=now)

    assert row == {
        "id": job.pk, "name": "tests.add", "args_json": "[1]", "kwargs_json": '{"b": 2}', "queue": "q",
        "attempt": 2, "max_attempts": 4, "timeout": 2.5, "attempts_at_retry": 0,
        "traceparent": traceparent, "tracestate": "k=v", "downstream": False,
    }
    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.RUNNING, 2, "host:1")
    assert job.started_at == now


def test_claim__queues_restrict_what_is_claimed() -> None:
    emails = JobFactory(queue="emails")
    reports = JobFactory(queue="reports")
    JobFactory(queue="default")

    assert claimed_ids(queues=["emails", "reports"]) == sorted([emails.pk, reports.pk])


def test_claim__paused_queues_and_names_are_left_alone() -> None:
    ok = JobFactory(queue="default", name="tests.testapp.jobs.record")
    JobFactory(queue="paused", name="tests.testapp.jobs.record")
    JobFactory(queue="default", name="tests.testapp.jobs.noop")

    assert claimed_ids(paused_queues=["paused"], paused_names=["tests.testapp.jobs.noop"]) == [ok.pk]


def test_paused__reads_the_pause_rows_by_kind() -> None:
    Pause.objects.create(kind=Pause.Kind.QUEUE, value="slow")
    Pause.objects.create(kind=Pause.Kind.NAME, value="tests.testapp.jobs.noop")

    assert claims.paused("default") == (["slow"], ["tests.testapp.jobs.noop"])


# -- fencing ---------------------------------------------------------------------------------


def _outcome(job_id: int, attempt: int, worker_id: str) -> str | None:
    now = timezone.now()
    decided = Transition(JobStatus.SUCCEEDED, {"attempt": attempt, "outcome": "succeeded"},
                         set_result=True, result="done", last_error="")
    return claims.record_outcome("default", worker_id, claims.OutcomeWrite(job_id, attempt, now, decided))


def _snapshot(job: Job) -> tuple[Any, ...]:
    job.refresh_from_db()
    return (job.status, job.attempts, job.worker_id, job.history, job.result, job.finished_at)


@pytest.mark.parametrize(
    ("attempts_now", "writer"),
    [(2, "w1"), (1, "w2")],
    ids=["stale-attempt-number", "another-worker"],
)
def test_record_outcome__a_lost_claim_writes_nothing(attempts_now: int, writer: str) -> None:
    job = JobFactory()
    claim(worker_id="w1")  # attempt 1
    # attempts=2: as if rescued and claimed again; "w2": a worker that never held this claim.
    Job.objects.filter(pk=job.pk).update(attempts=attempts_now)
    before = _snapshot(job)

    assert _outcome(job.pk, attempt=1, worker_id=writer) is None
    assert _snapshot(job) == before


def test_record_outcome__a_job_no_longer_running_writes_nothing() -> None:
    job = JobFactory()
    claim(worker_id="w1")
    assert _outcome(job.pk, attempt=1, worker_id="w1") == JobStatus.SUCCEEDED
    before = _snapshot(job)

    assert _outcome(job.pk, attempt=1, worker_id="w1") is None
    assert _snapshot(job) == before
    assert len(job.history) == 1


def test_record_outcome__the_current_claim_writes_its_outcome() -> None:
    job = JobFactory()
    claim(worker_id="w1")

    assert _outcome(job.pk, attempt=1, worker_id="w1") == JobStatus.SUCCEEDED

    job.refresh_from_db()
    assert (job.status, job.worker_id, job.result) == (JobStatus.SUCCEEDED, "", "done")
    assert job.history == [{"attempt": 1, "outcome": "succeeded"}]
    assert job.finished_at is not None


def test_outcomes_written__sees_the_worker_s_own_write_behind_an_operator_s_entry() -> None:
    # A lost reply: the worker wrote the outcome but never heard so, and an operator retried the
    # job before the worker asked. The write is still its own, not a rescuer's.
    job = JobFactory()
    claim(worker_id="w1")
    died = Transition(JobStatus.DEAD, {"attempt": 1, "worker": "w1", "outcome": "failed"}, last_error="boom")
    assert claims.record_outcome("default", "w1", claims.OutcomeWrite(job.pk, 1, timezone.now(), died)) == "dead"
    Job.objects.filter(pk=job.pk).retry(by="alice")

    assert claims.outcomes_written("default", "w1", [(job.pk, 1)]) == {job.pk: JobStatus.QUEUED}
    assert claims.outcomes_written("default", "w2", [(job.pk, 1)]) == {}
    assert claims.outcomes_written("default", "w1", [(job.pk, 2)]) == {}


# -- the claim's index -----------------------------------------------------------------------


def _insert_rows(count: int, status: str, attempts: int, finished_at: str) -> None:
    """``count`` rows in one INSERT … SELECT generate_series (``i``): SQL for status and finished_at."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {tables.TABLE} (name, args, kwargs, queue, priority, status, attempts, "
            "max_attempts, run_at, created_at, finished_at, worker_id, history, last_error) "
            f"SELECT 'tests.testapp.jobs.record', '[]', '{{}}', 'default', 0, {status}, {attempts}, 3, "
            f"now() - interval '1 day', now() - interval '1 day', {finished_at}, '', '[]', '' "
            "FROM generate_series(1, %s) AS i",
            [count],
        )


def _fill_finished_and_ready_rows() -> None:
    _insert_rows(100_000, "(ARRAY['succeeded', 'dead', 'stopped'])[1 + i %% 3]", 1, "now() - interval '1 day'")
    JobFactory.create_batch(5)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables.TABLE}")
    assert Job.objects.count() == 100_005


def _claim_params(filter_queues: bool) -> dict[str, Any]:
    return {
        "now": timezone.now(), "queues": ["default"] if filter_queues else [], "paused_queues": ["paused"],
        "paused_names": [], "limit": 4, "worker_id": "explain", "names": ["tests.add"],
        "declaring": True, "declare": [1, 2], "declare_fresh": 2,
    }


def _assert_walks_ready_index(plan: str) -> None:
    assert "Index Scan using django_jobs_ready_idx" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "LockRows" in plan, plan


@pytest.mark.parametrize("filter_queues", [False, True], ids=["every-queue", "some-queues"])
def test_claim__walks_the_partial_ready_index_among_many_finished_rows(filter_queues: bool) -> None:
    _fill_finished_and_ready_rows()
    sql = claim_sql(filter_queues)

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, _claim_params(filter_queues))
        plan = "\n".join(row[0] for row in cursor.fetchall())

    _assert_walks_ready_index(plan)


def test_sync__the_round_trip_workers_run_walks_the_ready_index_too() -> None:
    # Workers claim through claims.sync(), which writes outcomes in the same statement.
    _fill_finished_and_ready_rows()
    params = {**claims.outcome_params("explain", []), **_claim_params(filter_queues=False)}

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + claims.sync_sql(filter_queues=False), params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    _assert_walks_ready_index(plan)


def test_sync__the_worker_session_prices_out_every_plan_but_the_index_walk() -> None:
    JobFactory.create_batch(3)

    claims.sync("default", worker_id="explain", outcomes=[], limit=2, now=timezone.now(), names=["tests.add"])

    names = ["plan_cache_mode", "enable_bitmapscan", "enable_seqscan", "enable_sort", "jit"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{n}')" for n in names))
        assert cursor.fetchone() == ("force_generic_plan", "off", "off", "off", "off")


def _fill_queued_rows() -> None:
    _insert_rows(20_000, "'queued'", 0, "NULL")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {tables.TABLE}")


@pytest.mark.parametrize("outcomes", [True, False], ids=["with-outcomes", "claim-alone"])
@pytest.mark.parametrize(
    "fill", [None, _fill_finished_and_ready_rows, _fill_queued_rows],
    ids=["empty-table", "100k-finished-rows", "20k-queued-rows"],
)
def test_sync__its_generic_plan_on_a_worker_session_walks_the_ready_index(fill: Any, outcomes: bool) -> None:
    # Workers run the round trip as a prepared statement with a generic plan, made once without
    # the parameter values (and remade after ANALYZE). Whatever the table held when it was made,
    # that plan must be the walk of the ready index: no sequential scan, no sort. (Left to its
    # own costs, PostgreSQL picks a sequential scan and a sort for 20,000 queued rows.)
    if fill is not None:
        fill()
    params = {**claims.outcome_params("explain", []), **_claim_params(filter_queues=False)}
    sql = claims.sync_sql(filter_queues=False, outcomes=outcomes)
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)[sb]", sql)))
    for position, name in enumerate(names, start=1):
        sql = re.sub(rf"%\({name}\)[sb]", f"${position}", sql)

    with connection.cursor() as cursor:
        cursor.execute(WORKER_SESSION)  # undone with the test's transaction
        cursor.execute(f"PREPARE django_jobs_explain_sync AS {sql}")
        try:
            arguments = ", ".join(["%s"] * len(names))
            cursor.execute(f"EXPLAIN EXECUTE django_jobs_explain_sync({arguments})", [params[n] for n in names])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE django_jobs_explain_sync")

    _assert_walks_ready_index(plan)
    assert "Sort" not in plan, plan
    # Outcomes: one primary-key lookup each. Driven from the running index instead (which its
    # statistics call empty), the plan scanned the whole unnest once per running job.
    assert "django_jobs_running_idx" not in plan, plan
    if outcomes:
        assert "Index Cond: (id = u.id)" in plan, plan


def test_sync__a_round_trip_with_no_outcome_runs_the_claim_alone_and_one_with_outcomes_both() -> None:
    # Starting the outcome and workflow steps costs PostgreSQL ~0.3 ms even when they have nothing
    # to do: a worker woken for a new job claims it with the shorter statement.
    from django.test.utils import CaptureQueriesContext

    first, second = JobFactory.create_batch(2)
    with CaptureQueriesContext(connection) as queries:
        claimed = claims.sync("default", worker_id="w", outcomes=[], limit=1, now=timezone.now(),
                              names=[first.name]).claimed
        ended = Transition(JobStatus.SUCCEEDED, {"attempt": 1, "outcome": "succeeded"}, set_result=True)
        synced = claims.sync(
            "default", worker_id="w", limit=1, now=timezone.now(), names=[first.name],
            outcomes=[claims.OutcomeWrite(claimed[0]["id"], 1, timezone.now(), ended)],
        )

    statements = [q["sql"] for q in queries.captured_queries if "django_jobs_job" in q["sql"]]
    assert statements == [claims.sync_sql(outcomes=False), claims.sync_sql()]
    assert synced.written == {claimed[0]["id"]: JobStatus.SUCCEEDED.value}
    assert {row["id"] for row in [*claimed, *synced.claimed]} == {first.pk, second.pk}


# -- announcing finished jobs to Job.wait() ----------------------------------------------------


def _announced(observer: Any) -> list[str]:
    """The job ids announced on the done channel so far, as ``observer`` (listening) received them.

    A marker sent now is delivered after every notification committed before it, so reading up
    to it needs no waiting on time.
    """
    with connection.cursor() as cursor:
        cursor.execute(channel.NOTIFY, [channel.DONE_CHANNEL, "marker"])
    payloads = []
    for notify in observer.notifies(timeout=10):
        if notify.payload == "marker":
            return payloads
        payloads.append(notify.payload)
    raise AssertionError(f"the marker never arrived (got {payloads})")


@pytest.fixture
def observer(second_connection: Any) -> Any:
    second_connection.execute(f"LISTEN {channel.DONE_CHANNEL}")
    return second_connection


@pytest.mark.django_db(transaction=True)
def test_record_outcome__announces_a_finished_job_only_while_someone_waits(observer: Any) -> None:
    alone, waited = JobFactory(), JobFactory()
    claim(worker_id="w1")

    assert _outcome(alone.pk, attempt=1, worker_id="w1") == JobStatus.SUCCEEDED
    assert _announced(observer) == []
    with channel.OutcomeWaiter("default", tables.TABLE):
        assert _outcome(waited.pk, attempt=1, worker_id="w1") == JobStatus.SUCCEEDED
        assert _announced(observer) == [str(waited.pk)]


@pytest.mark.django_db(transaction=True)
def test_sync__announces_the_finished_jobs_of_its_outcomes_while_someone_waits(observer: Any) -> None:
    finishing, retrying = JobFactory(), JobFactory()
    claim(worker_id="w1")
    now = timezone.now()
    done = Transition(JobStatus.SUCCEEDED, {"attempt": 1, "outcome": "succeeded"}, set_result=True, result=1)
    again = Transition(JobStatus.RETRYING, {"attempt": 1, "outcome": "failed"}, run_at=now)

    with channel.OutcomeWaiter("default", tables.TABLE):
        written = claims.sync(
            "default", worker_id="w1", limit=0, now=now, names=[],
            outcomes=[claims.OutcomeWrite(finishing.pk, 1, now, done), claims.OutcomeWrite(retrying.pk, 1, now, again)],
        ).written
        assert written == {finishing.pk: JobStatus.SUCCEEDED, retrying.pk: JobStatus.RETRYING}
        assert _announced(observer) == [str(finishing.pk)]  # a retry isn't an outcome to wait for


@pytest.mark.django_db(transaction=True)
def test_waiter__sees_an_outcome_that_was_written_before_it_came_and_commits_after(
    second_connection: Any,
) -> None:
    # An outcome that found nobody waiting (so announces nothing) and commits only after a
    # waiter came: the waiter must not look at the job before that commit, or it would wait for
    # an announcement that never comes.
    job = JobFactory()
    claim(worker_id="w1")
    now = timezone.now()
    decided = Transition(JobStatus.SUCCEEDED, {"attempt": 1, "outcome": "succeeded"}, set_result=True, result=1)
    seen: list[str | None] = []
    waiter = threading.Thread(target=lambda: seen.append(_status_once_waiting(job.pk)))
    with connect() as worker:  # closed (rolled back) however the test ends: it holds the row
        worker.execute("BEGIN")
        params = claims.outcome_params("w1", [claims.OutcomeWrite(job.pk, 1, now, decided)])
        assert worker.execute(claims.OUTCOME_WRITE, params).fetchall() == [(job.pk, "succeeded", None)]
        waiter.start()
        wait_lock_waiter(second_connection, "SELECT pg_advisory_lock(%", "the waiter to wait for the outcome's commit")
        worker.execute("COMMIT")
    waiter.join(timeout=10)

    assert seen == [JobStatus.SUCCEEDED]


def _status_once_waiting(job_id: int) -> str | None:
    try:
        with channel.OutcomeWaiter("default", tables.TABLE) as waiter:
            return waiter.status(job_id)
    finally:
        connections.close_all()
