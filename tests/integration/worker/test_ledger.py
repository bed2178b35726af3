"""worker/ledger.py: claimed jobs and pending outcomes, written with the next claim (the inline
ledger django_jobs.testing uses: no children)."""

from __future__ import annotations

import pytest

from django_jobs.models import Job, JobStatus
from django_jobs.worker.ledger import Ledger
from tests.testapp import jobs

pytestmark = pytest.mark.django_db


def ledger() -> Ledger:
    return Ledger.inline(using="default", worker_id="w-test")


def test_sync__claims_into_the_buffer_and_holds_the_job() -> None:
    queued = jobs.record.enqueue("x")
    book = ledger()

    assert book.sync(5) == 1

    assert [row["id"] for row in book.buffer] == [queued.pk] == book.held_ids()
    assert Job.objects.get(pk=queued.pk).status == JobStatus.RUNNING


def test_flush__writes_a_queued_outcome_and_lets_go_of_the_job() -> None:
    queued = jobs.record.enqueue("x")
    book = ledger()
    book.sync(1)

    book.queue(book.buffer.popleft(), {"outcome": "succeeded", "result": "x"}, 0.01)
    book.flush()

    assert book.pending == [] and book.held_ids() == []
    job = Job.objects.get(pk=queued.pk)
    assert (job.status, job.result, len(job.history)) == (JobStatus.SUCCEEDED, "x", 1)


def test_stop_buffered__ends_a_claimed_job_stopped_without_running_it() -> None:
    queued = jobs.record.enqueue("x")
    book = ledger()
    book.sync(1)

    book.stop_buffered({queued.pk})
    book.flush()

    assert not book.buffer
    assert Job.objects.get(pk=queued.pk).status == JobStatus.STOPPED


def _worker_ledger(worker_id: str, children: int) -> Ledger:
    """A ledger with (unstarted) children, whose worker has a row to declare in."""
    from django.utils import timezone

    from django_jobs.models import Worker
    from django_jobs.services import ServiceContext
    from django_jobs.worker.pool import Slot
    from django_jobs.worker.reconnect import DatabaseLink

    Worker.objects.create(worker_id=worker_id, hostname="h", pid=1, queues=[], concurrency=children,
                          last_heartbeat=timezone.now(), may_start=[])
    return Ledger(context=ServiceContext("default", worker_id, timezone.now), queues=[],
                  link=DatabaseLink("default", worker_id), children=[Slot(i, worker_id) for i in range(children)])


def _may_start(worker_id: str) -> list[int]:
    from django_jobs.models import Worker

    return sorted(Worker.objects.get(worker_id=worker_id).may_start)


@pytest.mark.django_db(transaction=True)
def test_sync__declares_a_window_ahead_and_last_attempts_one_per_child_before_any_may_start() -> None:
    plain = [jobs.record.enqueue(f"p{i}") for i in range(6)]
    book = _worker_ledger("w-declare", children=2)
    book.declare_ahead = 4

    book.sync(6)  # the claim declares the first 4 of its own rows in the same statement
    once = [jobs.record.using(max_attempts=1).enqueue(f"o{i}") for i in range(3)]
    book.sync(3)  # a last attempt is never declared by the claim that takes it...
    assert len(book.buffer) == 9 and _may_start("w-declare") == sorted(book.declared)
    assert len(book.declared) == 4 and book.declared <= {j.pk for j in plain}
    book.sync(0)  # ...but by the worker, one per child

    assert _may_start("w-declare") == sorted(book.declared)
    assert len(book.declared_last) == 2 and book.declared_last <= {j.pk for j in once}
    assert [row["id"] in book.declared for row in book.buffer] == [True] * 6 + [False] * 3

    # One of them ended: its outcome and the next last attempt's declaration go in one statement.
    ended = next(row for row in book.buffer if row["id"] in book.declared_last)
    book.buffer.remove(ended)
    book.queue(ended, {"outcome": "succeeded"}, 0.01)
    book.sync(0)
    assert book.declared_last == {j.pk for j in once} - {ended["id"]}
    assert _may_start("w-declare") == sorted(book.declared)


@pytest.mark.django_db(transaction=True)
def test_rescue__gives_back_what_a_dead_worker_never_declared_and_counts_what_it_did() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from django_jobs.lifecycle import AT_MOST_ONCE, NEVER_STARTED
    from django_jobs.models import Worker
    from django_jobs.services.rescue import rescue

    plain = [jobs.record.enqueue(f"p{i}") for i in range(6)]
    once = [jobs.record.using(max_attempts=1).enqueue(f"o{i}") for i in range(3)]
    book = _worker_ledger("w-dead", children=2)
    book.declare_ahead = 4
    book.sync(9)
    book.sync(0)
    declared = set(book.declared)
    assert len(declared) == 6
    # The worker dies: no heartbeat since long before its claims.
    long_ago = timezone.now() - timedelta(hours=1)
    Worker.objects.filter(worker_id="w-dead").update(last_heartbeat=long_ago)
    Job.objects.filter(worker_id="w-dead").update(started_at=long_ago)

    rescued = rescue("default", now=timezone.now(), rescuer="r")

    assert len(rescued) == 9
    for job in Job.objects.filter(pk__in=[j.pk for j in plain + once]):
        last = job.history[-1]
        if job.pk not in declared:
            assert (job.status, job.attempts, last["outcome"], last["reason"]) == (
                JobStatus.QUEUED, 0, "handed_back", NEVER_STARTED)
        elif job.max_attempts == 1:
            assert (job.status, job.attempts, last["outcome"], last["reason"]) == (
                JobStatus.DEAD, 1, "lost", AT_MOST_ONCE)
        else:
            assert (job.status, job.attempts, last["outcome"]) == (JobStatus.RETRYING, 1, "lost")


@pytest.mark.django_db(transaction=True)
def test_sync__a_worker_taken_for_dead_starts_none_of_the_jobs_rescue_gave_back() -> None:
    # A worker frozen past RESCUE_AFTER wakes up: rescue gave back what it hadn't declared, and
    # deleted its row. Its next declaration finds no row, so it starts none of those (they may be
    # running elsewhere) and gives them back, which the fence turns into nothing.
    from datetime import timedelta

    from django.utils import timezone

    from django_jobs.models import Worker
    from django_jobs.services.rescue import rescue

    created = [jobs.record.using(max_attempts=1).enqueue(f"o{i}") for i in range(4)]
    book = _worker_ledger("w-frozen", children=2)
    book.sync(4)
    book.sync(0)  # declares two of them, one per child
    declared = set(book.declared)
    long_ago = timezone.now() - timedelta(hours=1)
    Worker.objects.filter(worker_id="w-frozen").update(last_heartbeat=long_ago)
    Job.objects.filter(worker_id="w-frozen").update(started_at=long_ago)
    rescue("default", now=timezone.now(), rescuer="r")
    assert not Worker.objects.filter(worker_id="w-frozen").exists()

    book.queue(book.buffer.popleft(), {"outcome": "succeeded"}, 0.01)  # one ended: room to declare
    book.sync(0)
    book.flush()

    assert book.row_gone and {row["id"] for row in book.buffer} <= declared
    assert not book.declared & {j.pk for j in created} - declared
    for job in Job.objects.filter(pk__in=[j.pk for j in created]):
        assert len(job.history) == 1  # rescue's entry only: the worker's late writes were fenced
        assert job.status == (JobStatus.DEAD if job.pk in declared else JobStatus.QUEUED)


@pytest.mark.django_db(transaction=True)
def test_claim_gated__a_worker_that_joins_gets_its_share_of_the_keys_as_the_first_gives_them_back() -> None:
    from django.utils import timezone

    from django_jobs.models import Worker

    for key in range(6):
        for _ in range(3):
            jobs.sync_account.enqueue(f"acct_{key}")
    first = _worker_ledger("w-first", children=2)
    first.refresh_pauses()
    assert first.claim_gated(10, free=2) == 6  # alone: every key
    assert first.gated_share == 6

    second = _worker_ledger("w-second", children=2)
    second.refresh_pauses()
    assert second.claim_gated(10, free=2) == 0  # every key is held, by more than the first's share
    assert second.gated_share == 3 and not second.gates_contended
    assert second.gate_due is not None  # crowded: it looks again soon

    # The first has no room (its buffer is full: the loop asks for nothing), yet the second's
    # "!joined" makes it read its share before it hands more slots over.
    assert first.claim_gated(0, free=0) == 0 and first.gated_share == 6
    first.forget_pauses()
    assert first.claim_gated(0, free=0) == 0 and first.gated_share == 3
    # Three of the first's jobs end: their keys' next jobs are not handed to it but left queued.
    for _ in range(3):
        first.queue(first.buffer.popleft(), {"outcome": "succeeded", "result": None}, 0.01)
    first.sync(0)
    assert len(first.buffer) == 3
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 3

    second.gated_dirty = True
    assert second.claim_gated(10, free=2) == 3
    running = Job.objects.filter(status=JobStatus.RUNNING)
    assert sorted(running.values_list("worker_id", flat=True)) == ["w-first"] * 3 + ["w-second"] * 3
    assert running.values("concurrency_key").distinct().count() == 6
    Worker.objects.filter(worker_id="w-second").update(last_heartbeat=timezone.now() - timezone.timedelta(hours=1))
    first.gated_dirty = True
    first.claim_gated(10, free=0)
    assert first.gated_share == 6  # the second counts no more once it is lost


@pytest.mark.django_db(transaction=True)
def test_claim_gated__a_worker_crowded_for_good_stops_polling_and_never_spins(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from django_jobs.worker import ledger as ledger_module

    for key in range(4):
        for _ in range(2):
            jobs.sync_account.enqueue(f"acct_{key}")
    first = _worker_ledger("w-first", children=2)
    first.refresh_pauses()
    assert first.claim_gated(10, free=2) == 4
    # Another version's worker, say, that never gives slots back: the second's share is 2 and
    # the first holds 4, so the second is crowded; it polls only for GATED_CROWDED_FOR.
    second = _worker_ledger("w-second", children=2)
    second.refresh_pauses()
    monkeypatch.setattr(ledger_module, "GATED_CROWDED_FOR", 0.0)
    assert second.claim_gated(10, free=2) == 0
    assert second.gated_share == 2 and second.gate_due is None

    # A deadline that came due while there was no room doesn't stay in the past (the loop would
    # wait 0 s, turn after turn): it becomes a look as soon as there is room.
    second.gate_due = time.monotonic() - 1
    second.gated_dirty = False
    assert second.claim_gated(0, free=0) == 0
    assert second.gate_due is None and second.gated_dirty


@pytest.mark.django_db(transaction=True)
def test_claim_gated__declares_the_jobs_for_its_idle_children_in_the_claim_itself() -> None:
    last = jobs.sync_account.using(max_attempts=1).enqueue("acct_9")
    keyed = [jobs.sync_account.enqueue(f"acct_{key}") for key in range(4)]
    book = _worker_ledger("w-gated", children=2)
    book.refresh_pauses()

    assert book.claim_gated(10, free=2) == 5  # two for the idle children, three ahead

    # Of the two for the idle children, the claim's own commit declares the one not on its last
    # attempt (it goes out with no round trip first); a last attempt is left to the worker, which
    # declares those one per child, and the jobs ahead to its next declaration.
    assert book.declared == {keyed[0].pk} and last.pk not in book.declared
    assert _may_start("w-gated") == [keyed[0].pk]
    assert book.buffer[0]["id"] == keyed[0].pk  # a declared job first: the pool sends from the head
    assert len(book.buffer) == 5


@pytest.mark.django_db(transaction=True)
def test_claim_gated__rate_held_jobs_left_for_want_of_a_child_are_claimed_once_one_is_free() -> None:
    for n in range(3):
        jobs.rated.enqueue(n)
    book = _worker_ledger("w-rated", children=2)
    book.refresh_pauses()

    assert book.claim_gated(10, free=1) == 1  # one child free: one start counted
    assert book.rate_bound and not book.gated_dirty
    # Its outcome frees no slot (a rate holds none), so nothing else would set gated_dirty: the
    # next claim runs as soon as a child is free, and not before.
    assert book.claim_gated(10, free=0) == 0
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 1
    assert book.claim_gated(10, free=2) == 2
    assert not book.rate_bound  # nothing left behind
    assert Job.objects.filter(status=JobStatus.RUNNING).count() == 3


@pytest.mark.django_db(transaction=True)
def test_claim_gated__jobs_another_worker_claimed_first_make_it_look_again(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from django_jobs.db import gates

    for key in range(3):
        jobs.sync_account.enqueue(f"acct_{key}")
    book = _worker_ledger("w-raced", children=2)
    book.refresh_pauses()
    original = gates.run_prepared

    def claimed_elsewhere(using: str, sql: str, params: object, **kwargs: object) -> object:
        if sql == gates.CLAIM_GATED:  # another worker's claim committed between the reads and this
            Job.objects.filter(pk=min(params["ids"])).update(status=JobStatus.RUNNING)  # type: ignore[index]
        return original(using, sql, params, **kwargs)

    monkeypatch.setattr(gates, "run_prepared", claimed_elsewhere)

    assert book.claim_gated(10, free=3) == 2
    # It looks again soon rather than at the next poll, and a burst worker doesn't stop here.
    assert book.gates_contended and book.gate_due is not None and book.gate_due - time.monotonic() < 0.1


@pytest.mark.django_db(transaction=True)
def test_claim_gated__a_job_a_rate_let_through_is_declared_before_slot_holders_ahead_of_it() -> None:
    for key in range(3):
        jobs.sync_account.enqueue(f"acct_{key}")
    rated = jobs.rated.enqueue(1)  # after the keyed ones in claim order
    book = _worker_ledger("w-first-rated", children=2)
    book.refresh_pauses()

    assert book.claim_gated(10, free=1) == 4
    # Its start was counted at the claim: it is the one the idle child gets at once.
    assert book.declared == {rated.pk} and book.buffer[0]["id"] == rated.pk


@pytest.mark.django_db(transaction=True)
def test_claim_gated__a_job_claimed_again_leaves_no_declaration_of_its_earlier_attempt() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from django_jobs.models import Worker
    from django_jobs.services.rescue import rescue

    queued = jobs.sync_account.using(max_attempts=2).enqueue("acct_1")
    book = _worker_ledger("w-again", children=2)
    book.refresh_pauses()
    assert book.claim_gated(10, free=1) == 1
    assert _may_start("w-again") == [queued.pk]
    # It fails, and the outcome is written without a new declaration (a flush): its id stays.
    book.queue(book.buffer.popleft(), {"outcome": "failed", "error": {"class": "ValueError", "message": "boom"}}, 0.01)
    book.flush()
    assert Job.objects.get(pk=queued.pk).status == JobStatus.RETRYING
    assert _may_start("w-again") == [queued.pk]

    Job.objects.filter(pk=queued.pk).update(run_at=timezone.now())  # its retry is due
    book.gated_dirty = True
    assert book.claim_gated(10, free=1) == 1  # its last attempt: never declared by a claim

    assert _may_start("w-again") == [] and not book.declared
    # The worker dies before it sends the job: rescue gives the attempt back unspent. (Had the
    # earlier attempt's id been left in the declaration, rescue would have counted this one,
    # which never started, as lost: its last, so the job would have ended dead without running.)
    long_ago = timezone.now() - timedelta(hours=1)
    Worker.objects.filter(worker_id="w-again").update(last_heartbeat=long_ago)
    Job.objects.filter(pk=queued.pk).update(started_at=long_ago)
    rescue("default", now=timezone.now(), rescuer="r")
    job = Job.objects.get(pk=queued.pk)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)


@pytest.mark.django_db(transaction=True)
def test_sync__a_job_claimed_again_is_not_left_declared_from_its_earlier_attempt() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from django_jobs.models import Worker
    from django_jobs.services.rescue import rescue

    again = jobs.record.using(max_attempts=2).enqueue("again")
    ahead = jobs.record.enqueue("ahead")
    book = _worker_ledger("w-plain-again", children=2)
    book.declare_ahead = 2
    book.sync(2)
    assert _may_start("w-plain-again") == sorted([again.pk, ahead.pk])
    sent = next(row for row in book.buffer if row["id"] == again.pk)
    book.buffer.remove(sent)
    book.queue(sent, {"outcome": "failed", "error": {"class": "ValueError", "message": "boom"}}, 0.01)
    book.flush()  # written without a new declaration: its id is still in the row's
    assert Job.objects.get(pk=again.pk).status == JobStatus.RETRYING

    Job.objects.filter(pk=again.pk).update(run_at=timezone.now())
    book.declare_ahead = 1  # the buffer's declared job is enough ahead: nothing new to declare...
    assert book.sync(5) == 1  # ...but this claim takes the job again, on its last attempt

    assert _may_start("w-plain-again") == [ahead.pk]
    long_ago = timezone.now() - timedelta(hours=1)
    Worker.objects.filter(worker_id="w-plain-again").update(last_heartbeat=long_ago)
    Job.objects.filter(worker_id="w-plain-again").update(started_at=long_ago)
    rescue("default", now=timezone.now(), rescuer="r")
    job = Job.objects.get(pk=again.pk)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)  # never sent: given back unspent
