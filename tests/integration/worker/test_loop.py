"""The worker package (django_jobs/worker/) with in-process burst workers: every outcome of an attempt, as stored.

Time is injected: each worker gets a fixed ``clock`` an hour or more ahead of the real one, so a
retry scheduled by one run is due for the next run and never for the same one.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_jobs import Backoff, job
from django_jobs.models import Job, JobStatus
from django_jobs.signals import job_finished, job_started
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)

RunWorker = Callable[..., Any]


class Boom(Exception):
    pass


@job(name="tests.worker.fail_with_backoff", max_attempts=3, backoff=Backoff(base=7, factor=3, jitter=0))
def fail_with_backoff(label: str = "") -> None:
    jobs._record(label)
    raise Boom(f"boom {label}")


@job(name="tests.worker.nap_within_timeout", timeout=0.6)
def nap_within_timeout(seconds: float) -> None:
    jobs._record()
    time.sleep(seconds)


@job(name="tests.worker.returns_nan")
def returns_nan() -> float:
    return float("nan")


@job(name="tests.worker.raises_nul", max_attempts=1)
def raises_nul() -> None:
    raise ValueError("bad byte \x00 in input")


def at(hours: float) -> Callable[[], datetime]:
    """A clock stopped ``hours`` from now (real time, read once)."""
    moment = timezone.now() + timedelta(hours=hours)
    return lambda: moment


def test_failure__after_an_operator_retry_the_backoff_starts_again_from_its_first_delay(
    run_worker: RunWorker,
) -> None:
    job_ = fail_with_backoff.enqueue("z")
    for hours in (1, 2, 3):
        run_worker(clock=at(hours))
    assert reload(job_).status == JobStatus.DEAD

    reload(job_).retry(now=at(3)())
    fourth = at(4)
    run_worker(clock=fourth)

    row = reload(job_)
    assert (row.status, row.attempts, row.max_attempts, row.attempts_at_retry) == (JobStatus.RETRYING, 4, 6, 3)
    assert row.run_at == fourth() + timedelta(seconds=7)  # base 7 * 3 ** 0, not 7 * 3 ** 3


def runs(job_id: int) -> int:
    return SideEffect.objects.filter(job_id=job_id).count()


def reload(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


# -- success ---------------------------------------------------------------------------------


def test_success__stores_the_result_and_one_history_entry(run_worker: RunWorker) -> None:
    clock = at(1)
    job_ = jobs.add.enqueue(2, 3)

    worker = run_worker(clock=clock)

    row = reload(job_)
    assert (row.status, row.result, row.attempts, row.last_error) == (JobStatus.SUCCEEDED, 5, 1, "")
    assert row.started_at == row.finished_at == clock()
    assert row.worker_id == ""
    (entry,) = row.history
    assert entry["attempt"] == 1 and entry["outcome"] == "succeeded" and entry["worker"] == worker.worker_id
    assert runs(job_.pk) == 1


def test_success__runs_each_ready_job_once_then_a_burst_worker_exits(run_worker: RunWorker) -> None:
    created = jobs.record.enqueue_many([[f"j{i}"] for i in range(6)])

    worker = run_worker(concurrency=2)

    assert worker.claimed_total == 6
    assert sorted(SideEffect.objects.values_list("label", flat=True)) == [f"j{i}" for i in range(6)]
    assert {r.status for r in Job.objects.all()} == {JobStatus.SUCCEEDED}
    assert {j.pk: reload(j).result for j in created} == {j.pk: f"j{i}" for i, j in enumerate(created)}


# -- failures and retries --------------------------------------------------------------------


def test_failure__retries_at_clock_plus_backoff(run_worker: RunWorker) -> None:
    first, second = at(1), at(2)
    job_ = fail_with_backoff.enqueue("x")

    run_worker(clock=first)
    row = reload(job_)
    assert (row.status, row.attempts) == (JobStatus.RETRYING, 1)
    assert row.run_at == first() + timedelta(seconds=7)  # base 7 * 3 ** 0
    assert row.finished_at is None
    assert row.last_error == "Boom: boom x"

    run_worker(clock=second)
    row = reload(job_)
    assert (row.status, row.attempts) == (JobStatus.RETRYING, 2)
    assert row.run_at == second() + timedelta(seconds=21)  # base 7 * 3 ** 1
    assert runs(job_.pk) == 2


def test_failure__goes_dead_after_max_attempts_with_every_attempt_in_history(run_worker: RunWorker) -> None:
    job_ = fail_with_backoff.enqueue("y")
    workers = [run_worker(clock=at(hours), worker_id=f"w{hours}") for hours in (1, 2, 3)]

    row = reload(job_)
    assert (row.status, row.attempts, row.max_attempts) == (JobStatus.DEAD, 3, 3)
    assert row.finished_at is not None
    assert row.last_error == "Boom: boom y"
    assert [e["attempt"] for e in row.history] == [1, 2, 3]
    for entry, worker in zip(row.history, workers):
        assert entry["worker"] == worker.worker_id
        assert entry["outcome"] == "failed"
        assert entry["error"]["class"] == "tests.integration.worker.test_loop.Boom"
        assert entry["error"]["message"] == "boom y"
        assert 'raise Boom(f"boom {label}")' in entry["error"]["traceback"]
    assert runs(job_.pk) == 3


def test_failure__dont_retry_exception_is_dead_at_once(run_worker: RunWorker) -> None:
    job_ = jobs.fail_fatally.enqueue()

    run_worker(clock=at(1))

    row = reload(job_)
    assert (row.status, row.attempts, row.max_attempts) == (JobStatus.DEAD, 1, 5)
    assert row.history[0]["error"]["class"] == "builtins.KeyError"
    assert runs(job_.pk) == 1


def test_failure__the_flaky_job_succeeds_on_a_later_attempt(run_worker: RunWorker) -> None:
    job_ = jobs.fail_then_succeed.enqueue(2)

    for hours in (1, 2, 3):
        run_worker(clock=at(hours))

    row = reload(job_)
    assert (row.status, row.result, row.attempts, row.last_error) == (JobStatus.SUCCEEDED, "ok", 3, "")
    assert [e["outcome"] for e in row.history] == ["failed", "failed", "succeeded"]


# -- control flow a job may raise ------------------------------------------------------------


def test_retry__reschedules_without_spending_the_attempt(run_worker: RunWorker) -> None:
    clock = at(1)
    job_ = jobs.snooze_once.enqueue(30)

    run_worker(clock=clock)

    row = reload(job_)
    assert row.status == JobStatus.QUEUED
    assert row.run_at == clock() + timedelta(seconds=30)
    # The attempt was used, and given back: the job still has its two attempts ahead of it.
    assert (row.attempts, row.max_attempts) == (1, 3)
    assert row.last_error == ""
    assert row.history[0]["outcome"] == "retry"

    run_worker(clock=at(2))
    row = reload(job_)
    assert (row.status, row.result, row.attempts) == (JobStatus.SUCCEEDED, "woke", 2)


def test_stop_job__ends_the_job_stopped_with_its_reason(run_worker: RunWorker) -> None:
    job_ = jobs.stop_self.enqueue("customer closed the account")

    run_worker(clock=at(1))

    row = reload(job_)
    assert row.status == JobStatus.STOPPED
    assert row.last_error == "customer closed the account"
    assert row.finished_at is not None
    assert row.history[0]["outcome"] == "stopped"


# -- attempts that never report back ---------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "outcome", "error_class", "message"),
    [
        (jobs.sleep_forever, "timeout", "django_jobs.exceptions.JobTimeout", "ran past its 0.5s timeout"),
        (jobs.crash_process, "lost", "django_jobs.exceptions.WorkerLost", "exited with code 3"),
    ],
    ids=["timeout", "child-died"],
)
def test_attempt_without_a_reply__fails_retryably_and_the_worker_runs_the_next_job(
    run_worker: RunWorker, definition: Any, outcome: str, error_class: str, message: str
) -> None:
    stuck = definition.using(priority=10).enqueue()
    after = jobs.record.enqueue("after")

    run_worker(concurrency=1, clock=at(1))

    row = reload(stuck)
    assert (row.status, row.attempts) == (JobStatus.RETRYING, 1)
    (entry,) = row.history
    assert entry["outcome"] == outcome
    assert entry["error"]["class"] == error_class
    assert message in entry["error"]["message"]
    assert row.last_error.startswith(error_class.rsplit(".", 1)[1] + ": ")
    assert runs(stuck.pk) == 1
    # The killed or dead child was replaced: the next job ran.
    assert reload(after).status == JobStatus.SUCCEEDED


def test_timeout__spent_attempts_end_dead(run_worker: RunWorker) -> None:
    stuck = jobs.sleep_forever.enqueue()

    run_worker(clock=at(1))
    run_worker(clock=at(2))

    row = reload(stuck)
    assert (row.status, row.attempts) == (JobStatus.DEAD, 2)
    assert [e["outcome"] for e in row.history] == ["timeout", "timeout"]


@pytest.mark.parametrize(
    ("definition", "outcome"), [(jobs.sleep_forever, "timeout"), (jobs.crash_process, "lost")],
    ids=["timeout", "child-died"],
)
def test_batch__jobs_waiting_behind_an_attempt_that_never_reports_run_once_on_their_first_attempt(
    transactional_db: None, definition: Any, outcome: str
) -> None:
    from django.test import override_settings

    from django_jobs.worker import WorkerLoop
    from django_jobs.worker.claim_ahead import WARMUP

    stuck = definition.using(priority=10).enqueue()
    behind = [jobs.record.enqueue(f"behind-{i}") for i in range(3)]
    with override_settings(DJANGO_JOBS={"LISTEN_NOTIFY": False}):
        worker = WorkerLoop(concurrency=1, burst=True, scheduler=False, clock=at(1))
        batches: list[list[int]] = []
        send = worker.pool.dispatch
        worker.pool.dispatch = lambda slot, rows: (batches.append([row["id"] for row in rows]), send(slot, rows))[1]  # type: ignore[method-assign]
        # As after a run of no-op jobs: short jobs go to a child several at a time.
        worker.claim_ahead.finished, worker.claim_ahead.average = WARMUP, 0.0001
        assert worker.run() == 0

    # One message carried all four; the stuck one ran first and the other three waited in its child.
    assert batches[0] == [stuck.pk, *(b.pk for b in behind)]
    row = reload(stuck)
    assert (row.attempts, [e["outcome"] for e in row.history]) == (1, [outcome])
    for waiting in behind:
        row = reload(waiting)
        assert (row.status, row.attempts, len(row.history), runs(waiting.pk)) == (JobStatus.SUCCEEDED, 1, 1, 1)


def test_batch__a_waiting_job_s_timeout_counts_from_its_own_start(transactional_db: None) -> None:
    # Three 0.4 s naps with a 0.6 s timeout each, sent to one child together: the third starts
    # 0.8 s after the message. Timed from the message, it would be killed; from its start, it isn't.
    from django.test import override_settings

    from django_jobs.worker import WorkerLoop
    from django_jobs.worker.claim_ahead import WARMUP

    naps = [nap_within_timeout.enqueue(0.4) for _ in range(3)]
    with override_settings(DJANGO_JOBS={"LISTEN_NOTIFY": False}):
        worker = WorkerLoop(concurrency=1, burst=True, scheduler=False, clock=at(1))
        worker.claim_ahead.finished, worker.claim_ahead.average = WARMUP, 0.0001
        sizes: list[int] = []
        send = worker.pool.dispatch
        worker.pool.dispatch = lambda slot, rows: (sizes.append(len(rows)), send(slot, rows))[1]  # type: ignore[method-assign]
        assert worker.run() == 0

    assert sizes[0] == 3
    assert [reload(nap).status for nap in naps] == [JobStatus.SUCCEEDED] * 3


# -- rows the worker can't run ---------------------------------------------------------------


def _unknown_job() -> Job:
    return Job.objects.create(name="shop.jobs.gone_in_this_release", priority=10)


def _assert_set_aside(row: Job) -> None:
    # Still queued for a worker that knows the name, untouched but for parked_at: no attempt spent.
    assert (row.status, row.attempts, row.worker_id, row.history) == (JobStatus.QUEUED, 0, "", [])
    assert row.parked_at is not None and row.started_at is None


def test_unknown_job__is_set_aside_queued_and_a_long_running_worker_carries_on(run_worker: RunWorker) -> None:
    unknown = _unknown_job()
    after = jobs.record.enqueue("after")

    run_worker(concurrency=1, burst=False, max_jobs=1)

    _assert_set_aside(reload(unknown))
    assert reload(after).status == JobStatus.SUCCEEDED


def test_unknown_job__a_burst_worker_carries_on_after_it(run_worker: RunWorker) -> None:
    unknown = _unknown_job()
    after = jobs.record.enqueue("after")

    run_worker(concurrency=1)

    _assert_set_aside(reload(unknown))
    assert reload(after).status == JobStatus.SUCCEEDED


def test_result_not_json__succeeds_once_with_no_result_and_a_warning_in_its_history(
    run_worker: RunWorker, caplog: pytest.LogCaptureFixture
) -> None:
    job_ = jobs.returns_datetime.enqueue("work")

    with caplog.at_level(logging.WARNING, logger="django_jobs"):
        run_worker(clock=at(1))
    run_worker(clock=at(2))  # nothing is due again: the work was done once

    row = reload(job_)
    assert (row.status, row.attempts, row.result, row.last_error) == (JobStatus.SUCCEEDED, 1, None, "")
    assert SideEffect.objects.filter(job_id=job_.id).count() == 1
    entry = row.history[0]
    assert (entry["outcome"], entry["result_unstorable"]) == ("succeeded", True)
    assert entry["warning"].startswith("the return value is a datetime, which doesn't survive a JSON round trip")


def test_result_not_json__tuples_are_stored_as_lists(run_worker: RunWorker) -> None:
    job_ = jobs.returns_tuple.enqueue("work")

    run_worker(clock=at(1))

    row = reload(job_)
    assert (row.status, row.result) == (JobStatus.SUCCEEDED, ["done", {"pair": [1, 2]}])
    assert "result_unstorable" not in row.history[0]


def test_result_not_json__nan_is_a_success_without_a_result(run_worker: RunWorker) -> None:
    job_ = returns_nan.enqueue()

    run_worker(clock=at(1))

    row = reload(job_)
    assert (row.status, row.result) == (JobStatus.SUCCEEDED, None)
    assert "nan" in row.history[0]["warning"]


def test_failure__an_error_message_postgres_cannot_store_still_ends_the_job_dead(run_worker: RunWorker) -> None:
    job_ = raises_nul.enqueue()

    run_worker(clock=at(1))

    row = reload(job_)
    assert row.status == JobStatus.DEAD
    assert row.history[0]["error"]["class"] == "builtins.ValueError"


# -- the listener's due times ----------------------------------------------------------------


def test_listener__a_time_that_fell_due_after_the_last_claim_wakes_the_worker_at_once() -> None:
    from django_jobs.worker.listener import Listener

    listener = Listener("default", wake_fd=-1, queues=set())
    claim_clock = time.time()
    listener.note_due(claim_clock - 0.002)  # ready for the claim: it was claimed then
    listener.note_due(claim_clock + 0.001)  # fell due during the claim's round trip
    listener.note_due(claim_clock + 60)

    assert listener.take_due(covered=claim_clock) <= time.monotonic() + 0.001
    # The next claim covers it; the one an hour away is all that is left.
    assert listener.take_due(covered=claim_clock + 0.001) > time.monotonic() + 59


# -- signals and logs ------------------------------------------------------------------------


def test_signals__job_started_and_job_finished_fire_in_the_worker(run_worker: RunWorker) -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    def on_started(sender: Any, **kwargs: Any) -> None:
        events.append(("started", kwargs))

    def on_finished(sender: Any, **kwargs: Any) -> None:
        events.append(("finished", kwargs))

    ok = jobs.record.using(priority=1).enqueue("ok")
    bad = jobs.fail_fatally.enqueue()
    job_started.connect(on_started)
    job_finished.connect(on_finished)
    try:
        worker = run_worker(concurrency=1, clock=at(1))
    finally:
        job_started.disconnect(on_started)
        job_finished.disconnect(on_finished)

    # Outcomes are written (and job_finished sent) in batches, so another job may start before
    # the previous one's job_finished; each job's own events come in order, once each.
    for job_id in (ok.pk, bad.pk):
        assert [kind for kind, kw in events if kw["job_id"] == job_id] == ["started", "finished"]
    by_event = {(kind, kw["job_id"]): kw for kind, kw in events}
    started, finished_ok, finished_bad = (
        by_event["started", ok.pk], by_event["finished", ok.pk], by_event["finished", bad.pk]
    )
    assert started["name"] == "tests.testapp.jobs.record"
    assert started["attempt"] == 1 and started["worker_id"] == worker.worker_id
    assert (finished_ok["outcome"], finished_ok["status"], finished_ok["error"]) == ("succeeded", "succeeded", None)
    assert finished_ok["duration"] >= 0
    assert (finished_bad["outcome"], finished_bad["status"]) == ("failed", "dead")
    assert finished_bad["error"]["class"] == "builtins.KeyError"


def test_logs__one_key_value_line_per_event(run_worker: RunWorker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="django_jobs")
    ok = jobs.record.using(priority=1).enqueue("ok")
    bad = jobs.fail_fatally.enqueue()

    worker = run_worker(concurrency=1, clock=at(1))

    lines = [r.getMessage() for r in caplog.records if r.name == "django_jobs"]
    shape = re.compile(r"^django_jobs event=\w+( \w+=(\"[^\"]*\"|\S+))*$")
    assert lines and all(shape.match(line) for line in lines), lines
    worker_field = f"worker={worker.worker_id}"
    assert f"django_jobs event=started job={ok.pk} name=tests.testapp.jobs.record attempt=1 {worker_field}" in lines
    assert any(
        line.startswith(f"django_jobs event=succeeded job={ok.pk} name=tests.testapp.jobs.record attempt=1 status=succeeded duration=")
        for line in lines
    ), lines
    failed = [line for line in lines if line.startswith(f"django_jobs event=failed job={bad.pk} ")]
    assert len(failed) == 1, lines
    assert "name=tests.testapp.jobs.fail_fatally" in failed[0]
    assert "status=dead" in failed[0]
    assert "error=\"KeyError: 'no such thing'\"" in failed[0]
    levels = {r.getMessage().split()[1]: r.levelno for r in caplog.records if r.name == "django_jobs"}
    assert levels["event=failed"] == logging.WARNING
    assert levels["event=succeeded"] == logging.INFO


# -- the message to a child ------------------------------------------------------------------


def test_message__arguments_stored_over_several_lines_still_make_one_line() -> None:
    import json

    from django_jobs.worker.protocol import encode_job

    row = {"id": 7, "name": "tests.add", "queue": "q\nx", "attempt": 1, "max_attempts": 3,
           "args_json": '[\n  1,\n  "two\\nlines"\n]', "kwargs_json": "{}"}

    line = encode_job(row)

    assert "\n" not in line
    assert json.loads(line) == {"id": 7, "name": "tests.add", "queue": "q\nx", "attempt": 1,
                                "max_attempts": 3, "args": [1, "two\nlines"], "kwargs": {}}


# -- claiming and waiting: the arithmetic ----------------------------------------------------


def _worker(concurrency: int = 2) -> Any:
    from django_jobs.worker import WorkerLoop

    return WorkerLoop(concurrency=concurrency, scheduler=False)


def test_claim_target__idle_children_get_jobs_even_while_others_hold_a_batch() -> None:
    worker = _worker(concurrency=4)
    worker.claim_ahead.finished, worker.claim_ahead.average = 1000, 0.06  # long jobs: no claiming ahead
    worker.pool.slots[0].jobs.extend({"id": i} for i in range(5))  # one running, four waiting behind it

    assert worker._claim_target() == 3  # one per idle child


def test_claim_target__the_first_long_job_stops_claiming_ahead() -> None:
    worker = _worker(concurrency=1)
    assert worker._claim_target() == 1 + 4  # warming up: the idle child and 4 ahead
    worker.claim_ahead.finished, worker.claim_ahead.average = 1, 3600.0  # as after one hour-long job

    assert worker._claim_target() == 1


def test_wait__pending_outcomes_do_not_spin_the_loop_while_the_database_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django_jobs.worker import pool as pool_module
    from django_jobs.worker.ledger import Outcome

    worker = _worker()
    now = time.monotonic()
    worker.link.down_until = now + 8.0
    worker.ledger.pending.append(Outcome({"id": 1}, {"outcome": "succeeded"}, 0.0, timezone.now(), timezone.now(),
                                  queued_at=now - 60))
    worker.maintenance.due = {key: now - 60 for key in worker.maintenance.due}
    timeouts: list[float] = []
    monkeypatch.setattr(pool_module, "_ready", lambda conns, timeout: timeouts.append(timeout) or [])

    worker._wait(idle_left=False)

    # Neither the overdue outcome write nor the overdue services can run before the database is
    # back: the loop sleeps until the reconnect (or the heartbeat interval), not zero.
    assert timeouts and timeouts[0] >= 4.0




def test_wait__a_turn_that_left_out_a_dry_claim_wakes_when_the_dry_spell_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing else may be due (a limited job's outcome is written 1 ms after it comes in): without
    # its own deadline the claim left out would wait for the next poll, a second later.
    from django_jobs.worker import pool as pool_module

    worker = _worker()
    now = time.monotonic()
    worker._dry_until = now + 0.03
    worker.maintenance.due = {key: now + 60 for key in worker.maintenance.due}
    timeouts: list[float] = []
    monkeypatch.setattr(pool_module, "_ready", lambda conns, timeout: timeouts.append(timeout) or [])

    worker._wait(idle_left=False, dry=True)
    worker._wait(idle_left=False)  # a turn that claimed (or had no room): no such deadline

    assert timeouts[0] <= 0.03 < 0.1 <= timeouts[1], timeouts  # (the tests poll every 0.2 s)


def test_unknown_job__every_one_of_the_name_is_set_aside_at_once(
    run_worker: RunWorker, caplog: pytest.LogCaptureFixture
) -> None:
    # 300 jobs of a name from newer code queued ahead: one claim meets a few, one statement more
    # sets the rest aside, and the burst worker goes on to what it knows.
    Job.objects.bulk_create([Job(name="shop.jobs.gone_in_this_release", priority=10) for _ in range(300)])
    after = [jobs.record.enqueue(str(n)) for n in range(3)]

    run_worker(concurrency=1)

    aside = Job.objects.filter(name="shop.jobs.gone_in_this_release", status=JobStatus.QUEUED, attempts=0)
    assert aside.filter(parked_at__isnull=False).count() == 300
    assert all(reload(job).status == JobStatus.SUCCEEDED for job in after)
    said = [r.getMessage() for r in caplog.records if "event=parked" in r.getMessage()]
    assert len(said) == 1 and "jobs=300" in said[0], said


def test_flow_control__a_burst_worker_that_met_a_gate_another_worker_held_looks_again(
    transactional_db: None,
) -> None:
    # Another worker's gated claim holds the key's gate for the length of its transaction. A
    # burst worker that meets it then has claimed nothing, but the work isn't over: it must look
    # again, not exit with the job still queued.
    import threading

    from django.db import connections
    from django.test import override_settings

    from django_jobs.conf import jobs_settings
    from django_jobs.worker import WorkerLoop

    held = jobs.sync_account.enqueue("acme", seconds=0)
    holder = connections.create_connection("default")  # a session of its own, as another worker's
    holder.inc_thread_sharing()  # closed by the thread below
    with holder.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtextextended('django_jobs:concurrency:account:acme', 0))")
    with override_settings(DJANGO_JOBS={**jobs_settings.user_settings(), "LISTEN_NOTIFY": False}):
        worker = WorkerLoop(concurrency=1, burst=True, scheduler=False, grace=5.0)

        def release_once_it_met_the_gate() -> None:
            deadline = time.monotonic() + 30
            while not worker.ledger.gates_contended and time.monotonic() < deadline:
                time.sleep(0.005)  # polling the worker's state, with a deadline
            holder.close()  # ends the session: its advisory lock goes with it

        releaser = threading.Thread(target=release_once_it_met_the_gate, name="test-gate-holder")
        releaser.start()
        try:
            assert worker.run() == 0
        finally:
            releaser.join(timeout=60)

    assert reload(held).status == JobStatus.SUCCEEDED


def test_flow_control__while_children_run_limited_jobs_a_dry_claim_is_not_repeated_on_every_reply(
    run_worker: RunWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Limited jobs come from the gated claim (and its handovers), never from the plain one. Once a
    # plain claim found nothing, running it again on every child's reply only split the limited
    # jobs' outcomes over many round trips: the loop waits DRY_FOR, or for a reason to look.
    from django_jobs.worker.ledger import Ledger
    from django_jobs.worker.loop import DRY_FOR
    from django_jobs.worker.pool import Pool

    events: list[tuple[str, float, int, bool, bool]] = []
    real_sync, real_wait = Ledger.sync, Pool.wait

    def sync(self: Ledger, limit: int) -> int:
        busy = any(slot.busy for slot in self.children)
        claimed = real_sync(self, limit)
        events.append(("sync", time.monotonic(), limit, self.claimed_short, busy))
        return claimed

    def wait(self: Pool, timeout: float, wake_fd: int) -> bool:
        woken = real_wait(self, timeout, wake_fd)
        if woken:
            events.append(("woken", time.monotonic(), 0, False, False))
        return woken

    monkeypatch.setattr(Ledger, "sync", sync)
    monkeypatch.setattr(Pool, "wait", wait)
    queued = [jobs.sync_account.enqueue(f"acct_{n % 3}", seconds=0.02) for n in range(30)]

    run_worker(concurrency=3, clock=at(1))

    assert all(reload(j).status == JobStatus.SUCCEEDED for j in queued)
    plain = [e for e in events if e[0] == "woken" or e[2] > 0]
    too_soon = [
        (round(later[1] - dry[1], 4), later)
        for dry, later in zip(plain, plain[1:])
        if dry[0] == "sync" and dry[3] and later[0] == "sync" and later[4]
        and later[1] - dry[1] < DRY_FOR
    ]
    assert not too_soon, too_soon
    # The limited jobs' outcomes were still written as they came, in round trips of their own
    # (a limited outcome is due 1 ms after it comes in), not only with plain claims.
    syncs = [e for e in events if e[0] == "sync"]
    assert len([e for e in syncs if e[2] > 0]) < len(syncs)


# -- pickup: nothing between the claim and the child ---------------------------------------------


def test_pickup__a_claimed_job_goes_to_a_child_before_the_gated_claim_runs(
    run_worker: RunWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tests.testapp registers jobs with flow-control keys, so every turn of the loop may also run
    # the gated claim: a round trip the plain job just claimed must not wait for.
    from django_jobs.db import gates
    from django_jobs.worker.pool import Slot

    events: list[Any] = []
    real_gated, real_send = gates.claim_gated, Slot.send

    def gated(*args: Any, **kwargs: Any) -> Any:
        events.append("gated claim")
        return real_gated(*args, **kwargs)

    def send(self: Slot, rows: list[dict[str, Any]], *args: Any) -> Any:
        events.append(("sent", [row["id"] for row in rows]))
        return real_send(self, rows, *args)

    monkeypatch.setattr(gates, "claim_gated", gated)
    monkeypatch.setattr(Slot, "send", send)
    plain = jobs.record.enqueue("plain")

    run_worker(concurrency=1, clock=at(1))

    assert ("sent", [plain.pk]) in events and "gated claim" in events, events
    assert events.index(("sent", [plain.pk])) < events.index("gated claim"), events
    assert reload(plain).status == JobStatus.SUCCEEDED


def test_pickup__a_claim_reads_the_pauses_only_when_the_loop_has_not_for_a_while(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_jobs.db import claims
    from django_jobs.worker import WorkerLoop
    from django_jobs.worker.ledger import PAUSES_FRESH, PAUSES_STALE

    reads: list[float] = []
    real_paused = claims.paused

    def paused(*args: Any, **kwargs: Any) -> Any:
        reads.append(time.monotonic())
        return real_paused(*args, **kwargs)

    monkeypatch.setattr(claims, "paused", paused)
    ledger = WorkerLoop(concurrency=1, burst=True, scheduler=False).ledger
    ledger.sync(1)  # never read: the first claim reads them
    assert len(reads) == 1

    # Read by the loop a little over PAUSES_FRESH ago: the claim on a wake-up doesn't wait for them,
    # and the loop reads them again before it waits.
    ledger._paused = (time.monotonic() - (PAUSES_FRESH + PAUSES_STALE) / 2, *ledger._paused[1:])
    ledger.sync(1)
    assert len(reads) == 1
    ledger.refresh_pauses()
    assert len(reads) == 2
    ledger.refresh_pauses()  # fresh now: nothing read
    assert len(reads) == 2

    # A loop that never got to refresh them (a turn longer than PAUSES_STALE): the claim reads them.
    ledger._paused = (time.monotonic() - PAUSES_STALE, *ledger._paused[1:])
    ledger.sync(1)
    assert len(reads) == 3
    # An operator's change (its notification) drops them: the next claim reads them.
    ledger.forget_pauses()
    ledger.sync(1)
    assert len(reads) == 4


def test_flow_control__wake_ups_run_the_gated_claim_at_most_once_per_spacing(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A burst of enqueues wakes a worker thousands of times a second; each wake-up used to run a
    # gated claim (every key and sequence walked) whether or not any job had a key.
    from django_jobs.db import gates
    from django_jobs.worker import WorkerLoop
    from django_jobs.worker.ledger import GATED_WAKE_SPACING

    ran: list[float] = []

    def claim_gated(*args: Any, **kwargs: Any) -> gates.GatedClaim:
        ran.append(time.monotonic())
        return gates.GatedClaim([])

    monkeypatch.setattr(gates, "claim_gated", claim_gated)
    ledger = WorkerLoop(concurrency=1, burst=True, scheduler=False).ledger
    ledger.sync(1)  # reads the limits (nothing to claim): tests.testapp registers jobs with keys
    ledger.claim_gated(1)
    assert len(ran) == 1

    ledger.gated_woken = True
    ledger.claim_gated(1)  # woken right after the last one: not yet, but soon, not at the next poll
    assert len(ran) == 1
    assert ledger.gate_due is not None and ledger.gate_due <= ran[0] + GATED_WAKE_SPACING + 1e-9
    wait_until_monotonic(ledger.gate_due)
    ledger.claim_gated(1)
    assert len(ran) == 2 and not ledger.gated_woken

    # A freed slot (gated_dirty) doesn't wait.
    ledger.gated_dirty = True
    ledger.claim_gated(1)
    assert len(ran) == 3


def wait_until_monotonic(moment: float) -> None:
    """Block until time.monotonic() reaches ``moment`` (a deadline the code under test set)."""
    while time.monotonic() < moment:
        time.sleep(max(0.0, moment - time.monotonic()))
