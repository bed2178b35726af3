"""Workflows: jobs enqueued with using(after=[...]) wait for their upstream jobs (real PostgreSQL,
burst workers in this process)."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs import enqueue_many
from django_jobs.db import claims, maintenance, tables
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import Dependency, Job, JobStatus
from django_jobs.services.prune import prune
from tests.conftest import connect
from tests.support import snapshots
from tests.support.procs import wait_lock_waiter
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)


class Rollback(Exception):
    pass


def labels() -> list[str]:
    return list(SideEffect.objects.order_by("id").values_list("label", flat=True))


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def test_after__stores_the_job_waiting_on_its_upstream_jobs() -> None:
    first = jobs.step.enqueue("a")
    second = jobs.step.enqueue("b")

    downstream = jobs.step.using(after=[first, second.pk]).enqueue("c")

    assert downstream.status == JobStatus.WAITING
    assert fresh(downstream).status == JobStatus.WAITING
    assert fresh(downstream).pending_upstream == 2
    assert set(Dependency.objects.filter(downstream=downstream).values_list("upstream_id", flat=True)) == {
        first.pk, second.pk,
    }
    assert fresh(first).downstream_version > 0


def test_after__chain_runs_in_order(run_worker: Any) -> None:
    previous = jobs.step.enqueue("1")
    for n in range(2, 6):
        previous = jobs.step.using(after=[previous]).enqueue(str(n))

    run_worker(concurrency=2)

    assert labels() == ["1", "2", "3", "4", "5"]
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}


def test_after__fan_in_runs_once_after_all_and_reads_their_results(run_worker: Any) -> None:
    thumbs = [jobs.step.enqueue(f"thumb{size}", size) for size in (100, 400, 800)]
    publish = jobs.total_upstream.using(after=thumbs).enqueue("publish")

    run_worker(concurrency=3)

    assert labels().count("publish=1300") == 1
    assert labels()[-1] == "publish=1300"
    published = fresh(publish)
    assert published.status == JobStatus.SUCCEEDED
    assert published.started_at >= max(fresh(t).finished_at for t in thumbs)


def test_after__on_a_succeeded_job_is_queued_at_once(run_worker: Any) -> None:
    done = jobs.step.enqueue("done")
    run_worker()

    later = jobs.step.using(after=[done]).enqueue("later")

    assert later.status == JobStatus.QUEUED
    run_worker()
    assert labels() == ["done", "later"]


def test_after__on_a_dead_job_is_stored_stopped_naming_it(run_worker: Any) -> None:
    broken = jobs.fail_unless_fixed.enqueue("broken")
    run_worker()

    later = jobs.step.using(after=[broken]).enqueue("later")

    assert later.status == JobStatus.STOPPED
    stored = fresh(later)
    assert stored.status == JobStatus.STOPPED
    assert stored.last_error == f"upstream job #{broken.pk} ended dead"
    assert stored.stopped_by == broken.pk


def test_after__an_unknown_id_is_an_error_naming_it_and_writes_nothing() -> None:
    known = jobs.step.enqueue("known")

    with pytest.raises(InvalidJobOptions, match=r"#987654321"):
        jobs.step.using(after=[known, 987654321]).enqueue("orphan")

    assert Job.objects.count() == 1
    assert not Dependency.objects.exists()


def test_after__a_job_of_another_database_is_an_error_naming_it() -> None:
    other = Job(id=55, name=jobs.step.name)
    other._state.adding = False
    other._state.db = "elsewhere"

    with pytest.raises(InvalidJobOptions, match=r"#55.*'elsewhere'"):
        jobs.step.using(after=[other]).enqueue("x")


def test_after__with_unique_key_is_refused_at_using() -> None:
    with pytest.raises(InvalidJobOptions, match="unique_key"):
        jobs.step.using(after=[1], unique_key="k")


def test_after__a_rolled_back_graph_leaves_no_row() -> None:
    with pytest.raises(Rollback):
        with transaction.atomic():
            charge = jobs.step.enqueue("charge")
            jobs.step.using(after=[charge]).enqueue("receipt")
            thumbs = [jobs.step.enqueue(f"t{n}") for n in range(3)]
            jobs.step.using(after=thumbs).enqueue("publish")
            raise Rollback

    assert not Job.objects.exists()
    assert not Dependency.objects.exists()


def test_enqueue_many__after_applies_to_every_item(run_worker: Any) -> None:
    chunks = enqueue_many(jobs.step, [[f"chunk{n}", 1] for n in range(5)])
    summaries = jobs.total_upstream.enqueue_many([["summary"]], after=chunks)
    emails = enqueue_many(jobs.step, [["mail-a"], ["mail-b"]], after=summaries)

    assert [j.status for j in [*summaries, *emails]] == [JobStatus.WAITING] * 3
    run_worker(concurrency=2)

    assert labels()[-3:-2] == ["summary=5"]
    assert sorted(labels()[-2:]) == ["mail-a", "mail-b"]


def test_dead_upstream__stops_everything_downstream_and_retry_rearms_it(run_worker: Any) -> None:
    upstream = jobs.fail_unless_fixed.enqueue("upstream")
    middle = jobs.step.using(after=[upstream]).enqueue("middle")
    last = jobs.step.using(after=[middle]).enqueue("last")

    run_worker()

    for job in (middle, last):
        stored = fresh(job)
        assert stored.status == JobStatus.STOPPED
        assert stored.last_error == f"upstream job #{upstream.pk} ended dead"
    assert labels() == []

    SideEffect.objects.create(job_id=0, label="fixed")
    assert fresh(upstream).retry()
    assert fresh(middle).status == JobStatus.WAITING
    assert fresh(last).status == JobStatus.WAITING

    run_worker()

    assert labels() == ["fixed", "upstream", "middle", "last"]


def test_retry__of_a_stopped_downstream_job_rearms_it_alone(run_worker: Any) -> None:
    upstream = jobs.sleep_for.using(run_at=timezone.now() + dt.timedelta(hours=1)).enqueue(0)
    downstream = jobs.step.using(after=[upstream]).enqueue("down")
    assert fresh(downstream).stop()
    assert fresh(downstream).status == JobStatus.STOPPED

    assert fresh(downstream).retry()

    stored = fresh(downstream)
    assert (stored.status, stored.pending_upstream) == (JobStatus.WAITING, 1)


def test_retry__of_a_downstream_job_whose_upstream_is_dead_is_skipped(run_worker: Any) -> None:
    broken = jobs.fail_unless_fixed.enqueue("broken")
    downstream = jobs.step.using(after=[broken]).enqueue("down")
    run_worker()

    result = Job.objects.filter(pk=downstream.pk).retry()

    assert result.skipped["upstream_failed"] == 1
    assert fresh(downstream).status == JobStatus.STOPPED


def test_stop__of_a_waiting_job_cascades_downstream() -> None:
    upstream = jobs.step.using(run_at=timezone.now() + dt.timedelta(hours=1)).enqueue("up")
    middle = jobs.step.using(after=[upstream]).enqueue("middle")
    last = jobs.step.using(after=[middle]).enqueue("last")

    assert fresh(middle).stop("not needed")

    assert fresh(middle).last_error == "not needed"
    assert fresh(last).status == JobStatus.STOPPED
    assert fresh(last).last_error == f"upstream job #{middle.pk} ended stopped"
    assert fresh(upstream).status == JobStatus.QUEUED


def test_dead_letter__of_an_upstream_job_cascades_downstream() -> None:
    upstream = jobs.step.using(run_at=timezone.now() + dt.timedelta(hours=1)).enqueue("up")
    downstream = jobs.step.using(after=[upstream]).enqueue("down")

    assert fresh(upstream).dead_letter("bad input")

    assert fresh(downstream).status == JobStatus.STOPPED
    assert fresh(downstream).last_error == f"upstream job #{upstream.pk} ended dead"


def test_prune__keeps_an_upstream_job_a_waiting_job_needs(run_worker: Any) -> None:
    done = jobs.step.enqueue("done", 7)
    other = jobs.step.using(run_at=timezone.now() + dt.timedelta(hours=1)).enqueue("later")
    waiting = jobs.total_upstream.using(after=[done, other]).enqueue("sum")
    plain = jobs.step.enqueue("plain")
    run_worker()
    assert fresh(done).status == JobStatus.SUCCEEDED

    with_zero_retention = {"RETENTION": {"succeeded": 0, "stopped": 0, "dead": 0}}
    from django.test import override_settings
    with override_settings(DJANGO_JOBS=with_zero_retention):
        prune("default", now=timezone.now() + dt.timedelta(days=1))

    assert Job.objects.filter(pk=done.pk).exists()
    assert not Job.objects.filter(pk=plain.pk).exists()
    assert fresh(waiting).status == JobStatus.WAITING

    Job.objects.filter(pk=other.pk).update(run_at=timezone.now())
    run_worker()
    assert "sum=7" in labels()
    with override_settings(DJANGO_JOBS=with_zero_retention):
        prune("default", now=timezone.now() + dt.timedelta(days=1))
    assert not Job.objects.exists()
    assert not Dependency.objects.exists()


def test_prune__keeps_an_upstream_job_an_enqueue_named_while_the_batch_ran(second_connection: Any) -> None:
    """An enqueue after a finished job that commits while a prune batch is on its way to that
    job's row: the batch (whose snapshot has no edge yet) finds the row changed when it locks it,
    and must leave it, since the new job will read its result."""
    ahead = 200_000  # rows the batch locks before it reaches the upstream job's: ~1 s of work
    old = timezone.now() - dt.timedelta(days=2)
    seed = jobs.step.enqueue("seed")
    Job.objects.filter(pk=seed.pk).update(status=JobStatus.SUCCEEDED, finished_at=old)
    snapshots.copies(seed, ahead - 1)
    upstream = jobs.step.enqueue("up", 7)
    Job.objects.filter(pk=upstream.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=old + dt.timedelta(hours=1), result=7,
    )

    def prune_batch() -> int:
        return maintenance.prune("default", status=JobStatus.SUCCEEDED, finished_before=timezone.now(),
                                 batch=ahead + 10)

    with snapshots.running(second_connection, "WITH deleted AS%", prune_batch) as batch:
        downstream = jobs.total_upstream.using(after=[upstream]).enqueue("sum")
        assert not batch.ended, "the batch ended before the enqueue: raise `ahead`"

    assert (batch.returned, batch.raised) == ([ahead], [])
    assert Job.objects.filter(pk=upstream.pk).exists()
    assert Dependency.objects.filter(upstream=upstream, downstream=downstream).exists()


def lean_round_trip(write: claims.OutcomeWrite) -> dict[int, str]:
    """A worker's round trip for a job that had nothing downstream at its claim: without the
    workflow steps (claims._sync_sql_pg(workflows=False))."""
    return claims.sync("default", worker_id="w1", outcomes=[write], limit=0, now=timezone.now(), names=[],
                       downstream=False).written


def outcome_alone(write: claims.OutcomeWrite) -> dict[int, str]:
    return claims.record_outcomes("default", "w1", [write])


@pytest.mark.parametrize("write_outcome", [outcome_alone, lean_round_trip])
def test_outcome_write__runs_again_when_a_job_was_added_downstream_meanwhile(
    second_connection: Any, write_outcome: Any
) -> None:
    """An enqueue after a running job holds its row; the outcome write that waited for it must
    not miss the new job (it runs again with a snapshot that has it, and with the workflow steps)."""
    upstream = jobs.step.enqueue("up")
    claimed = claims.claim("default", worker_id="w1", limit=1, now=timezone.now())
    assert [(c["id"], c["downstream"]) for c in claimed] == [(upstream.pk, False)]

    # Another session enqueues a job after the running one and keeps its transaction open.
    enqueued = threading.Event()
    release = threading.Event()
    result: dict[str, Any] = {}

    def enqueue_in_other_session() -> None:
        try:
            with transaction.atomic():
                result["job"] = jobs.step.using(after=[upstream.pk]).enqueue("down")
                enqueued.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=enqueue_in_other_session)
    thread.start()
    assert enqueued.wait(10)

    write = succeeded(upstream)

    def commit_soon() -> None:
        # Let the outcome write start (and wait on the row), then commit the enqueue.
        deadline = timezone.now() + dt.timedelta(seconds=10)
        while timezone.now() < deadline:
            waiting = second_connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%%done AS%%'"
            ).fetchone()
            if waiting and waiting[0]:
                break
        release.set()

    committer = threading.Thread(target=commit_soon)
    committer.start()
    written = write_outcome(write)
    committer.join()
    thread.join()

    assert written == {upstream.pk: JobStatus.SUCCEEDED}
    assert fresh(result["job"]).status == JobStatus.QUEUED
    assert connection.vendor == "postgresql"


def race(
    watcher: Any, held: Job, first: tuple[Any, str, str], second: tuple[Any, str, str]
) -> list[BaseException]:
    """Run two bodies, each in a thread on its own connection, into a deadlock; what they raised.

    Another session holds the row of ``held`` while ``first`` starts, until it waits on a lock
    (``watcher``, a session outside any transaction, sees its statement, SQL LIKE its pattern),
    and then ``second`` starts and waits too; then that session lets go. Each is ``(body,
    statement pattern, what it waits for)``. The first has the shorter ``deadlock_timeout``: it
    finds the deadlock, and it is the one PostgreSQL aborts.
    """
    errors: list[BaseException] = []

    def in_a_session(body: Any, deadlock_timeout: str) -> threading.Thread:
        def run() -> None:
            try:
                with connection.cursor() as cursor:  # this thread's own connection
                    cursor.execute(f"SET deadlock_timeout = '{deadlock_timeout}'")
                body()
            except BaseException as exc:
                errors.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    with connect() as holder:  # rolled back however the test ends
        holder.execute("BEGIN")
        holder.execute(f"SELECT id FROM {tables.TABLE} WHERE id = %s FOR UPDATE", [held.pk])
        threads = []
        for (body, like, waits_for), timeout in ((first, "50ms"), (second, "1min")):
            threads.append(in_a_session(body, timeout))
            wait_lock_waiter(watcher, like, waits_for)
        holder.execute("COMMIT")
    for thread in threads:
        thread.join(timeout=30)
    return errors


def succeeded(job: Job, worker_id: str = "w1") -> claims.OutcomeWrite:
    """What a worker writes for ``job`` (claimed by ``worker_id``) having succeeded."""
    from django_jobs.lifecycle import Attempt, Ended, Happened, decide

    attempt = Attempt(job.pk, job.name, 1, 3, worker_id, timezone.now(), 0.0)
    return claims.OutcomeWrite(job.pk, 1, timezone.now(), decide(attempt, Ended(Happened.SUCCEEDED, 0), timezone.now(), None))


def test_outcome_write__locks_in_id_order_so_an_enqueue_after_the_same_jobs_cannot_deadlock(
    second_connection: Any,
) -> None:
    """An enqueue after running jobs locks their rows in id order (db/workflows.HOLD_UPSTREAM);
    a worker's outcome write, whose outcomes come in the order its children replied, must take
    them in the same order, or each can hold a row the other waits on. Here the enqueue holds
    the first job and waits on the second (another session holds it) while the worker writes the
    third's outcome before the first's."""
    first, middle, last = (jobs.step.enqueue(x) for x in "abc")
    claims.claim("default", worker_id="w1", limit=3, now=timezone.now())
    enqueued: list[Job] = []

    errors = race(
        second_connection,
        middle,
        (lambda: enqueued.append(jobs.step.using(after=[first, middle, last]).enqueue("d")),
         "%WITH held AS%", "the enqueue to hold the first job and wait on the second"),
        (lambda: claims.sync("default", worker_id="w1", limit=0, now=timezone.now(), names=[],
                             outcomes=[succeeded(last), succeeded(first)]),
         "%done AS%", "the outcome write to wait on a job the enqueue holds"),
    )

    assert errors == []
    assert [fresh(j).status for j in (first, middle, last)] == [JobStatus.SUCCEEDED, JobStatus.RUNNING, JobStatus.SUCCEEDED]
    assert fresh(enqueued[0]).status == JobStatus.WAITING  # on the middle one


def crossing_jobs() -> tuple[Job, Job, Job, Job]:
    """Jobs an operator's change and a worker's outcome write lock in crossing orders: ``upstream``
    and ``last`` running on worker w1, ``downstream`` waiting on ``upstream`` (its id before
    ``last``'s), and ``between`` running, for another session to hold."""
    upstream = jobs.step.enqueue("up")
    downstream = jobs.step.using(after=[upstream]).enqueue("down")
    between, last = jobs.step.enqueue("between"), jobs.step.enqueue("last")
    claims.claim("default", worker_id="w1", limit=3, now=timezone.now())
    return upstream, downstream, between, last


def outcome_write(upstream: Job, last: Job) -> tuple[Any, str, str]:
    """race()'s side for worker w1 writing the successes of ``upstream`` and ``last``: it locks
    both, then waits on ``upstream``'s downstream job."""
    return (
        lambda: claims.sync("default", worker_id="w1", limit=0, now=timezone.now(), names=[],
                            outcomes=[succeeded(upstream), succeeded(last)]),
        "%done AS%", "the outcome write to wait on the downstream job",
    )


@pytest.mark.parametrize("in_a_transaction", [False, True], ids=["autocommit", "inside atomic()"])
def test_operator_verb__a_batch_that_loses_a_deadlock_to_a_worker_runs_again(
    second_connection: Any, in_a_transaction: bool
) -> None:
    """A worker's outcome write locks its jobs in id order and then their downstream jobs, which
    come after some of them; an operator's verb locks its batch in id order. So each can hold a
    row the other waits on, and PostgreSQL aborts one. The worker's write runs again; so must the
    verb's batch, rather than fail the admin action. Here the verb holds the downstream job and
    waits (on a row another session holds) before the last one, which the worker's write takes
    before it waits on the downstream job. Inside the caller's transaction (ATOMIC_REQUESTS, say)
    the batch's savepoint is what is rolled back and run again."""
    upstream, downstream, between, last = crossing_jobs()
    stopped: list[Any] = []

    def stop() -> None:
        with transaction.atomic() if in_a_transaction else contextlib.nullcontext():
            stopped.append(Job.objects.filter(pk__in=[downstream.pk, between.pk, last.pk]).stop(by="ops"))

    errors = race(
        second_connection,
        between,
        (stop,
         "%FOR UPDATE", "the verb to hold the downstream job and wait on the next"),
        outcome_write(upstream, last),
    )

    assert errors == []
    assert [fresh(j).status for j in (upstream, last)] == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]
    assert fresh(downstream).status == JobStatus.STOPPED
    assert fresh(between).stop_requested_at is not None
    # Counted once each, as the batch that landed saw them: after the worker's write.
    assert dict(stopped[0].done) == {JobStatus.QUEUED: 1, JobStatus.RUNNING: 1}
    assert dict(stopped[0].skipped) == {JobStatus.SUCCEEDED: 1}


def test_admin_delete__a_delete_that_loses_a_deadlock_to_a_worker_runs_again(second_connection: Any) -> None:
    """The admin's delete locks its rows in id order too (the same race as the verbs above): the
    page deletes the jobs rather than fail with a deadlock."""
    from django.contrib import admin

    upstream, downstream, between, last = crossing_jobs()
    job_admin = admin.site._registry[Job]

    errors = race(
        second_connection,
        between,
        (lambda: job_admin.delete_queryset(None, Job.objects.filter(pk__in=[downstream.pk, between.pk, last.pk])),
         '%DELETE FROM "django_jobs_job"%', "the delete to hold the downstream job and wait on the next"),
        outcome_write(upstream, last),
    )

    assert errors == []
    assert list(Job.objects.order_by("pk").values_list("pk", "status")) == [(upstream.pk, JobStatus.SUCCEEDED)]


def test_rescue__a_lost_upstream_job_with_no_attempts_left_stops_its_downstream() -> None:
    from django_jobs.services.rescue import rescue

    upstream = jobs.step.using(max_attempts=1).enqueue("lost")
    downstream = jobs.step.using(after=[upstream]).enqueue("down")
    assert [c["id"] for c in claims.claim("default", worker_id="gone:1", limit=1, now=timezone.now())] == [upstream.pk]
    Job.objects.filter(pk=upstream.pk).update(started_at=timezone.now() - dt.timedelta(hours=1))

    rescued = rescue("default", now=timezone.now(), rescuer="me")

    assert rescued == [(upstream.pk, jobs.step.name, JobStatus.DEAD)]
    assert fresh(downstream).status == JobStatus.STOPPED
    assert fresh(downstream).last_error == f"upstream job #{upstream.pk} ended dead"


def test_round_trip__without_the_workflow_steps_runs_with_them_for_a_job_given_downstream_since_its_claim() -> None:
    upstream = jobs.step.enqueue("up")
    (row,) = claims.claim("default", worker_id="w1", limit=1, now=timezone.now())
    assert row["downstream"] is False  # so the worker writes its outcome without the steps
    downstream = jobs.step.using(after=[upstream]).enqueue("down")  # while it runs

    with CaptureQueriesContext(connection) as queries:
        synced = claims.sync("default", worker_id="w1", outcomes=[succeeded(upstream)], limit=0,
                             now=timezone.now(), names=[], downstream=False)

    assert synced.written == {upstream.pk: JobStatus.SUCCEEDED}
    assert synced.released == [downstream.pk]
    assert fresh(downstream).status == JobStatus.QUEUED
    # (Only statements that ran to the end are logged: the one without the steps failed.)
    assert [q["sql"][:22] for q in queries.captured_queries] == ["WITH RECURSIVE done AS"]

    # A job with nothing downstream is written without the steps; one claimed with jobs
    # downstream says so.
    plain, after = jobs.step.enqueue("plain"), jobs.step.enqueue("after")
    jobs.step.using(after=[after]).enqueue("waits")
    rows = claims.claim("default", worker_id="w1", limit=5, now=timezone.now())
    assert {r["id"]: r["downstream"] for r in rows} == {downstream.pk: False, plain.pk: False, after.pk: True}
    with CaptureQueriesContext(connection) as queries:
        written = lean_round_trip(succeeded(plain))
    assert written == {plain.pk: JobStatus.SUCCEEDED}
    assert [q["sql"][:12] for q in queries.captured_queries] == ["WITH done AS"]


def test_outcome_write__a_job_with_no_downstream_reads_no_edge() -> None:
    # The common case costs nothing: the walk starts only from rows with downstream_version > 0.
    from django.db import connection as conn

    jobs.step.enqueue("plain")
    claims.claim("default", worker_id="w", limit=1, now=timezone.now())
    job = Job.objects.get()
    from django_jobs.lifecycle import Attempt, Ended, Happened, decide

    attempt = Attempt(job.pk, job.name, 1, 3, "w", timezone.now(), 0.0)
    write = claims.OutcomeWrite(job.pk, 1, timezone.now(), decide(attempt, Ended(Happened.SUCCEEDED, 1), timezone.now(), None))
    params = claims.outcome_params("w", [write])
    with conn.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + claims.OUTCOME_WRITE, params)
        plan = "\n".join(r[0] for r in cursor.fetchall())

    dependency_scans = [line for line in plan.splitlines() if "django_jobs_dependency" in line]
    assert dependency_scans, plan
    assert all("never executed" in line for line in dependency_scans), plan


def test_diagnose__explains_what_a_waiting_job_waits_on(run_worker: Any) -> None:
    from django_jobs.diagnose import diagnose

    done = jobs.step.enqueue("done")
    run_worker()
    later = jobs.step.using(run_at=timezone.now() + dt.timedelta(hours=1)).enqueue("later")
    waiting = jobs.step.using(after=[done, later]).enqueue("waiting")

    (reason,) = diagnose(fresh(waiting))

    assert reason.code == "upstream"
    assert reason.message.startswith(f"Waiting on 1 of 2 upstream jobs: #{later.pk} (queued, due in ")


def test_overview_and_metrics__count_waiting_jobs() -> None:
    from django_jobs import metrics, stats

    upstream = jobs.step.using(run_at=timezone.now() + dt.timedelta(hours=1)).enqueue("up")
    jobs.step.enqueue_many([["a"], ["b"]], after=[upstream])

    (default,) = [q for q in stats.queue_stats("default", now=timezone.now()) if q.queue == "default"]
    text = metrics.render("default", now=timezone.now())

    assert (default.waiting, default.queued) == (2, 1)
    assert 'django_jobs_jobs{queue="default",status="waiting"} 2' in text


def test_after__a_released_job_with_a_concurrency_key_is_taken_by_the_gated_claim(run_worker: Any) -> None:
    first = jobs.step.enqueue("first")
    limited = jobs.limited_pair.using(after=[first]).enqueue(0.01)
    keyed = jobs.sync_account.using(after=[first]).enqueue("acct", 0.01)

    run_worker(concurrency=2)

    assert fresh(limited).status == JobStatus.SUCCEEDED
    assert fresh(keyed).status == JobStatus.SUCCEEDED
    assert fresh(keyed).started_at >= fresh(first).finished_at


def test_delete__of_a_job_deletes_its_edges_and_a_stopped_then_retried_downstream_runs() -> None:
    upstream = jobs.step.using(run_at=timezone.now() + dt.timedelta(hours=1)).enqueue("up")
    downstream = jobs.step.using(after=[upstream]).enqueue("down")

    Job.objects.filter(pk=upstream.pk).delete()

    assert not Dependency.objects.exists()
    assert fresh(downstream).stop()
    assert fresh(downstream).retry()
    assert fresh(downstream).status == JobStatus.QUEUED


def test_outcome_write__a_fan_in_member_reads_a_few_rows_however_big_the_fan_in() -> None:
    # Workers run the outcome write with a generic plan on a session that prices out sorts. Asked
    # to lock the downstream jobs in id order, that plan once walked the whole primary key instead,
    # filtering every row for `waiting`: each member's outcome read the whole table.
    import re

    from django_jobs.db.connection import WORKER_SESSION
    from django_jobs.lifecycle import Attempt, Ended, Happened, decide

    members = jobs.step.enqueue_many([[str(n)] for n in range(2_000)])
    downstream = jobs.step.using(after=members).enqueue("down")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")
    (claimed,) = claims.claim("default", worker_id="w", limit=1, now=timezone.now())
    attempt = Attempt(claimed["id"], jobs.step.name, 1, 3, "w", timezone.now(), 0.0)
    write = claims.OutcomeWrite(
        claimed["id"], 1, timezone.now(), decide(attempt, Ended(Happened.SUCCEEDED, 1), timezone.now(), None)
    )

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(WORKER_SESSION)  # undone with the rollback below
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + claims.OUTCOME_WRITE,
                       claims.outcome_params("w", [write]))
        plan = "\n".join(r[0] for r in cursor.fetchall())
        transaction.set_rollback(True)

    removed = [int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", plan)]
    assert max(removed, default=0) < 10, plan
    assert fresh(downstream).status == JobStatus.WAITING
