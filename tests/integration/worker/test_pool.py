"""worker/pool.py: the children, with real forked ones: deadlines and shutdown."""

from __future__ import annotations

import time
from typing import Any

import pytest

from django_jobs.signals import job_started
from tests.support.procs import wait_until
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)


def runs(job_id: int) -> int:
    return SideEffect.objects.filter(job_id=job_id).count()


def _worker(concurrency: int = 2) -> Any:
    from django_jobs.worker import WorkerLoop

    return WorkerLoop(concurrency=concurrency, scheduler=False)


def test_shutdown__idle_children_exit_on_their_own(transactional_db: None) -> None:
    # Each child must see EOF on its pipe when the worker closes its end: a child holding a copy of
    # a parent end (its own, or another slot's) would wait out the join timeout and be SIGKILLed.
    from django.test import override_settings

    from django_jobs.worker import WorkerLoop

    jobs.record.enqueue("one")
    with override_settings(DJANGO_JOBS={"LISTEN_NOTIFY": False}):
        worker = WorkerLoop(concurrency=2, burst=True, scheduler=False)
        children: list[Any] = []
        # The slots forget their processes at shutdown: keep them from the moment a job starts.
        grab = lambda sender, **kwargs: children.extend(s.process for s in worker.pool.slots)  # noqa: E731
        job_started.connect(grab)
        try:
            worker.run()
        finally:
            job_started.disconnect(grab)

    assert [child.exitcode for child in children] == [0, 0]


def test_stop_deadline__a_reply_already_sent_is_read_before_anything_is_killed(transactional_db: None) -> None:
    # The stopped job returned just before its grace ran out, and its child started the next job
    # of the batch. Killing the child then would record the first as stopped and run the second
    # again: the worker reads the reply first, and nothing is killed.
    from django.test import override_settings

    first = jobs.sleep_for.using(priority=10).enqueue(0.05)
    second = jobs.sleep_for.enqueue(30)
    with override_settings(DJANGO_JOBS={"LISTEN_NOTIFY": False}):
        worker = _worker(concurrency=1)
        slot = worker.pool.slots[0]
        slot.start()
        try:
            assert worker.ledger.sync(2) == 2
            worker.pool.dispatch(slot, [worker.ledger.buffer.popleft(), worker.ledger.buffer.popleft()])
            wait_until(lambda: runs(second.pk) == 1, message="the second job to start in the child")
            slot.extra["stop_deadline"] = time.monotonic() - 1  # the first job's grace ran out

            worker.pool.enforce_deadlines()

            assert slot.job is not None and slot.job["id"] == second.pk and slot.process.is_alive()
            assert [(o.slot_job["id"], o.reply["outcome"]) for o in worker.ledger.pending] == [(first.pk, "succeeded")]
        finally:
            slot.kill()
            import os

            os.close(worker._wake_r)
            os.close(worker._wake_w)


def test_children__come_from_the_fork_server_and_without_one_from_this_process(
    run_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    from pathlib import Path

    from django_jobs.worker import pool

    pools: list[Any] = []
    parents: list[int] = []
    real_start = pool.Pool.start

    def start(self: Any) -> None:
        pools[:] = [self]
        real_start(self)

    def parent_of(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    def grab(sender: Any, **kwargs: Any) -> None:
        parents.extend(parent_of(s.pid) for s in pools[0].slots if s.pid)

    monkeypatch.setattr(pool.Pool, "start", start)
    job_started.connect(grab)
    try:
        jobs.record.enqueue("served")
        run_worker()
        served = set(parents)
        # Where there is no fork server (not Linux): forked from the worker itself, as before.
        monkeypatch.setattr(pool, "fork_server_available", lambda: False)
        parents.clear()
        jobs.record.enqueue("forked here")
        run_worker()
    finally:
        job_started.disconnect(grab)
    assert served and os.getpid() not in served
    assert set(parents) == {os.getpid()}
    assert SideEffect.objects.filter(label__in=["served", "forked here"]).count() == 2
