"""The worker loop behind ``manage.py runjobs``: claim, hand to a child, record the outcome.

The main process owns every database write about jobs; children only run job functions. It never
holds a transaction open while a job runs: the claim is one autocommitted statement and so is each
outcome write.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import os
import signal
from collections import deque
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import wait
from typing import Any, Callable, Iterator

from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connections
from django.utils import timezone

from . import lifecycle

from .db import channel, claims, connection
from .conf import jobs_settings
from .executor import BATCH_BYTES, ChildStartFailed, Slot
from .log import log_event
from .models import Job
from .registry import registry
from .services import ServiceContext, default_services
from .services.rescue import own_previous_ids, pid_namespace, rescue
from .signals import job_finished, job_started
from .text import storable

logger = logging.getLogger("django_jobs")

# Claim ahead of free children only while jobs are short: then a round trip per job would cost
# more than the jobs (and each statement's fixed cost in PostgreSQL, ~1 ms, would be shared by
# few jobs), while for longer jobs claiming ahead would hold back work another worker could
# start. The buffer holds about CLAIM_AHEAD seconds of work per child at the recent average job
# duration, at most MAX_CLAIM jobs, and nothing once jobs take PREFETCH_BELOW seconds or more.
# Until WARMUP jobs have finished the average means little, so the buffer starts at
# PREFETCH_FACTOR jobs per child.
PREFETCH_BELOW = 0.05
PREFETCH_FACTOR = 4
CLAIM_AHEAD = 0.1
MAX_CLAIM = 200
WARMUP = 8
# Jobs averaging under BATCH_BELOW seconds go to a child several at a time: up to BATCH_WORK
# seconds of them, and no more than an even share of the buffer per idle child. The child runs
# them back to back and answers each; a longer job always goes alone.
BATCH_BELOW = 0.005
BATCH_WORK = 0.02
# The longest an outcome waits to be written with the next claim before it is written alone.
OUTCOME_DELAY = 0.05

# Errors that mean "the database went away", which the worker waits out instead of dying.
_DB_DOWN = (OperationalError, InterfaceError)


def _failure(outcome: str, error_class: str, message: str) -> dict[str, Any]:
    """A reply the worker makes up for an attempt whose child never answered."""
    return {"outcome": outcome, "retryable": True,
            "error": lifecycle.ErrorRecord.ours(error_class, message).as_dict()}


def _payload_bytes(row: dict[str, Any]) -> int:
    return len(row["args_json"]) + len(row["kwargs_json"])


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Outcome:
    """An attempt's result waiting to be written (kept until the database takes it)."""

    slot_job: dict[str, Any]
    reply: dict[str, Any]
    duration: float
    started_at: datetime
    finished_at: datetime
    queued_at: float = field(default_factory=time.monotonic)
    # A write of it was sent and its reply lost: it may already be in the table.
    unsure: bool = False


class Listener(threading.Thread):
    """Holds a LISTEN connection and pokes the worker's wake-up pipe on each NOTIFY."""

    def __init__(self, using: str, wake_fd: int, queues: set[str]):
        super().__init__(name="django_jobs-listener", daemon=True)
        self.using = using
        self.wake_fd = wake_fd
        self.queues = queues
        self.stopping = threading.Event()
        # Set on a control notification ("!stop", "!pause"): the main loop re-reads state.
        self.control = threading.Event()
        # Future run_at times announced by enqueues (epoch seconds, a heap).
        self.due: list[float] = []
        self.due_lock = threading.Lock()

    def note_due(self, epoch: float) -> None:
        """Remember a future run_at announced by an enqueue, so the worker wakes for it."""
        with self.due_lock:
            if len(self.due) < 10_000:  # past that, polling covers the rest
                heapq.heappush(self.due, epoch)

    def take_due(self, covered: float) -> float | None:
        """The earliest announced run_at not yet covered by a claim, as a monotonic time (None if
        none); it may be in the past.

        ``covered`` is the epoch time of the worker's last claim: a job due by then was ready for
        that claim, so its entry is dropped. One due between the claim's clock reading and now
        stays, and wakes the worker at once: dropping every time already reached lost jobs that
        fell due during the claim's round trip until the next wake-up (up to OUTCOME_DELAY or
        POLL_INTERVAL later).
        """
        with self.due_lock:
            while self.due and self.due[0] <= covered:
                heapq.heappop(self.due)
            return time.monotonic() + (self.due[0] - time.time()) if self.due else None

    def _wake(self) -> None:
        try:
            os.write(self.wake_fd, b"n")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the worker is awake anyway

    def on_payload(self, payload: str) -> None:
        """Act on one notification: a control message, or a wake-up for a queue."""
        if payload.startswith("!") and " " not in payload:
            self.control.set()
            self._wake()
            return
        try:
            queue, due = channel.parse_wakeup(payload)
        except ValueError:
            # Not ours to understand (another version, or someone else's NOTIFY on the channel):
            # waking costs one claim, while dropping it could leave a job waiting for a poll.
            log_event("notify_unreadable", logging.WARNING, payload=repr(payload[:200]))
            self._wake()
            return
        if self.queues and queue not in self.queues:
            return
        if due is not None:
            self.note_due(due)
        self._wake()

    def run(self) -> None:
        wrapper = connections[self.using]
        delay = float(jobs_settings.RECONNECT_BACKOFF)
        while not self.stopping.is_set():
            conn = None
            try:
                conn = wrapper.get_new_connection(wrapper.get_connection_params())
                conn.autocommit = True
                conn.execute(f"LISTEN {channel.CHANNEL}")
                delay = float(jobs_settings.RECONNECT_BACKOFF)
                # Anything enqueued while we weren't listening would otherwise wait for a poll.
                self._wake()
                while not self.stopping.is_set():
                    for notify in conn.notifies(timeout=1.0):
                        self.on_payload(notify.payload)
            except Exception as exc:  # noqa: BLE001 - any failure here means "reconnect later"
                if self.stopping.is_set():
                    break
                log_event("listen_lost", logging.WARNING, error=str(exc)[:200], retry_in=f"{delay:.1f}s")
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass

    def stop(self) -> None:
        self.stopping.set()


class Heartbeat(threading.Thread):
    """Writes the worker's heartbeat and picks up stop requests, on its own connection.

    A thread of the main process, not a child: jobs run in children, so a job stuck in a C call
    can't starve it, while a frozen or killed worker stops beating, which is what rescue looks for.
    """

    def __init__(self, worker: Worker):
        super().__init__(name="django_jobs-heartbeat", daemon=True)
        self.worker = worker
        self.stopping = threading.Event()

    def run(self) -> None:
        interval = float(jobs_settings.HEARTBEAT_INTERVAL)
        try:
            while not self.stopping.wait(interval):
                try:
                    self.worker.beat()
                except Exception as exc:  # noqa: BLE001 - keep beating once the database is back
                    log_event("heartbeat_failed", logging.WARNING, worker=self.worker.worker_id,
                              error=str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__)
                    try:
                        connections[self.worker.using].close()
                    except Exception:  # noqa: BLE001
                        connections[self.worker.using].connection = None
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class Worker:
    """A pool of child processes fed by batched claims. ``run()`` returns an exit code."""

    queues: list[str] = field(default_factory=list)
    concurrency: int = 1
    burst: bool = False
    max_jobs: int | None = None
    worker_id: str = field(default_factory=default_worker_id)
    grace: float = 25.0
    using: str = field(default_factory=lambda: jobs_settings.DATABASE)
    clock: Callable[[], datetime] = timezone.now
    #: Run the cron scheduler in this worker (``runjobs --no-scheduler`` turns it off).
    scheduler: bool = True

    def __post_init__(self) -> None:
        self.slots = [Slot(i, self.worker_id) for i in range(self.concurrency)]
        self.pending: list[Outcome] = []
        # Claimed jobs waiting for a free child (see _claim_target).
        self.buffer: deque[dict[str, Any]] = deque()
        self._avg_duration = 0.0
        self._finished_total = 0
        # Epoch time up to which announced run_at times are covered by a claim (see take_due).
        self._claim_covered = 0.0
        self.claimed_total = 0
        self.stopping = False
        self.stop_deadline: float | None = None
        #: Why run() returned non-zero (None while it hasn't).
        self.failure: str | None = None
        self.force = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._listener: Listener | None = None
        self._heartbeat: Heartbeat | None = None
        # Job ids someone asked to stop, filled by the heartbeat thread and the listener.
        self._stop_ids: set[int] = set()
        self._stop_lock = threading.Lock()
        self._paused: tuple[float, list[str], list[str]] = (0.0, [], [])
        self._db_backoff = float(jobs_settings.RECONNECT_BACKOFF)
        self._db_down_until = 0.0
        # When the main loop last went round; the heartbeat thread stops beating if it stalls.
        self._loop_turned = time.monotonic()
        # The ids of the jobs this worker holds and when it listed them, published by the main
        # loop after each change (see _publish_held); the heartbeat reads only this.
        self._held: tuple[tuple[int, ...], datetime | None] = ((), None)
        # Set while the main loop waits for a statement: since when, and on which server process.
        self._db_call_since: float | None = None
        self._db_wrapper: Any = None
        # A statement's reply was lost: it may have claimed rows this worker never received.
        self._unsure = False
        self._closing = False
        # (id, attempt) of jobs that ran but whose outcome couldn't be stored: never handed back.
        self._unwritable: set[tuple[int, int]] = set()
        self.context = ServiceContext(using=self.using, worker_id=self.worker_id, clock=self.clock)
        self.services = default_services(self.context, scheduler=self.scheduler)
        self._service_due = {id(s): 0.0 for s in self.services}

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self._register()
        self._publish_held()
        code = 0
        try:
            # Children are forked before any thread starts, and inherit no open database connection.
            connections.close_all()
            for slot in self.slots:
                slot.start()
            if connection.is_postgres(self.using) and jobs_settings.LISTEN_NOTIFY:
                self._listener = Listener(self.using, self._wake_w, set(self.queues))
                self._listener.start()
            self._heartbeat = Heartbeat(self)
            self._heartbeat.start()
            log_event(
                "worker_started",
                worker=self.worker_id,
                queues=",".join(self.queues) or "*",
                concurrency=self.concurrency,
                pid=os.getpid(),
            )
            self._loop()
        except ChildStartFailed as exc:
            # Without children no job can run: stop (handing back every claimed job) rather
            # than hang with jobs claimed. A supervisor restarts the worker.
            self.failure = str(exc)
            log_event("worker_failed", logging.ERROR, worker=self.worker_id, error=self.failure)
            code = 1
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self._unregister()
        log_event("worker_stopped", worker=self.worker_id, jobs=self.claimed_total)
        return code

    # -- the worker's row, heartbeats and stop requests ------------------------------------------

    def _register(self) -> None:
        """Write this worker's row, and rescue jobs left running by its own earlier incarnations."""
        from .models import Worker as WorkerRow

        for _attempt in range(60):
            try:
                WorkerRow.objects.using(self.using).update_or_create(
                    worker_id=self.worker_id,
                    defaults={
                        "hostname": socket.gethostname(),
                        "pid": os.getpid(),
                        "queues": self.queues,
                        "concurrency": self.concurrency,
                        "started_at": self.clock(),
                        "last_heartbeat": self.clock(),
                        "running": [],
                        "listed_at": self.clock(),
                        "pid_namespace": pid_namespace(),
                    },
                )
                rescue(self.using, now=self.clock(), rescuer=self.worker_id, own=own_previous_ids(self.context))
                self._db_ok()
                return
            except _DB_DOWN as exc:
                self._db_lost(exc)
                time.sleep(max(0.0, self._db_down_until - time.monotonic()))
        raise RuntimeError("the database stayed unreachable; giving up")

    def _unregister(self) -> None:
        from .models import Worker as WorkerRow

        try:
            WorkerRow.objects.using(self.using).filter(worker_id=self.worker_id).delete()
        except DatabaseError:
            pass  # rescue removes stale rows

    def running_ids(self) -> list[int]:
        """Ids of the jobs this worker holds: claimed, running in a child, or with an outcome not
        yet written (main thread only; the heartbeat reads what _publish_held() stored)."""
        ids = [row["id"] for row in self.buffer]
        for slot in self.slots:
            ids.extend(row["id"] for row in slot.jobs)
        ids.extend(o.slot_job["id"] for o in self.pending)
        return ids

    def _held_attempts(self) -> set[tuple[int, int]]:
        """(id, attempt) of every job held (see running_ids)."""
        held = {(row["id"], row["attempt"]) for row in self.buffer}
        for slot in self.slots:
            held.update((row["id"], row["attempt"]) for row in slot.jobs)
        held.update((o.slot_job["id"], o.slot_job["attempt"]) for o in self.pending)
        return held

    def _publish_held(self) -> None:
        """Publish the held ids for the heartbeat, after a statement changed them.

        Only a claim adds to them and only an outcome write removes from them (between those a
        job just moves from buffer to child to pending outcome), and both happen here in the main
        thread, so the list the heartbeat writes is never missing a job its worker holds.
        """
        self._held = (tuple(self.running_ids()), self.clock())

    def _waiting_on_lock(self) -> bool:
        """Whether the main loop is blocked in a statement that waits for a lock on the server
        (one a migration or VACUUM FULL holds, say): its reply will come once the lock goes.

        Not behind a transaction-pooling PgBouncer (LISTEN_NOTIFY off): the backend pid the
        client knows is not the server process running the statement there.
        """
        wrapper = self._db_wrapper
        if self._db_call_since is None or wrapper is None or not jobs_settings.LISTEN_NOTIFY:
            return False
        info = getattr(wrapper.connection, "info", None)  # read now: it may have reconnected
        pid = getattr(info, "backend_pid", None)
        return pid is not None and claims.waiting_on_lock(self.using, pid)

    def beat(self) -> None:
        """Record a heartbeat and look for stop requests (called from the heartbeat thread)."""
        from .models import Worker as WorkerRow

        stalled = time.monotonic() - self._loop_turned
        if stalled > float(jobs_settings.RESCUE_AFTER) / 2:
            # A heartbeat promises the worker will record its jobs' outcomes. A main loop stuck
            # this long can't, so stop promising: after RESCUE_AFTER its jobs are rescued. Unless
            # it only waits for a lock on our tables: it will record them once the lock goes, and
            # rescuing them meanwhile would run every one of them twice.
            if not self._waiting_on_lock():
                log_event("loop_stalled", logging.ERROR, worker=self.worker_id, seconds=f"{stalled:.0f}")
                return
            log_event("waiting_on_lock", logging.WARNING, worker=self.worker_id, seconds=f"{stalled:.0f}")
        running, listed_at = self._held
        fields = {"last_heartbeat": self.clock(), "running": list(running), "listed_at": listed_at}
        updated = WorkerRow.objects.using(self.using).filter(worker_id=self.worker_id).update(**fields)
        if not updated:
            # A rescuer took us for dead (a long freeze or outage); come back, and let fencing
            # drop any outcome of a job that was rescued meanwhile.
            log_event("worker_reappeared", logging.WARNING, worker=self.worker_id)
            WorkerRow.objects.using(self.using).update_or_create(
                worker_id=self.worker_id,
                defaults={"hostname": socket.gethostname(), "pid": os.getpid(), "queues": self.queues,
                          "concurrency": self.concurrency, "pid_namespace": pid_namespace(), **fields},
            )
        try:
            stops = claims.stop_requested(self.using, list(running), lock_timeout=1.0)
        except OperationalError as exc:
            if not claims.is_lock_timeout(exc):
                raise
            return  # the job table is locked: look again at the next beat
        self.request_stops(stops)

    def request_stops(self, job_ids: list[int]) -> None:
        if not job_ids:
            return
        with self._stop_lock:
            new = set(job_ids) - self._stop_ids
            self._stop_ids.update(new)
        if new:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

    def _apply_stop_requests(self) -> None:
        if self._listener is not None and self._listener.control.is_set():
            self._listener.control.clear()
            self._paused = (0.0, [], [])  # re-read pauses before the next claim
            try:
                with self._db_call():
                    self.request_stops(claims.stop_requested(self.using, self.running_ids()))
            except _DB_DOWN as exc:
                self._db_lost(exc)
        with self._stop_lock:
            if not self._stop_ids:
                return
            ids = set(self._stop_ids)
        grace = float(jobs_settings.STOP_GRACE)
        for row in [r for r in self.buffer if r["id"] in ids]:
            # Claimed but not started: it ends stopped without running.
            self.buffer.remove(row)
            self._queue_outcome(row, {"outcome": "stopped", "reason": "stopped before it started"}, 0.0)
        for slot in self.slots:
            job = slot.job
            if job is not None and job["id"] in ids and "stop_deadline" not in slot.extra:
                slot.extra["stop_deadline"] = time.monotonic() + grace
                log_event("stop_requested", job=job["id"], name=job["name"], worker=self.worker_id,
                          grace=f"{grace:g}s")
        with self._stop_lock:
            self._stop_ids &= set(self.running_ids())

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stopping:
            self.force = True
            log_event("worker_stopping", worker=self.worker_id, mode="now", signal=signal.Signals(signum).name)
        else:
            self.stopping = True
            self.stop_deadline = time.monotonic() + self.grace
            log_event(
                "worker_stopping", worker=self.worker_id, mode="graceful",
                signal=signal.Signals(signum).name, grace=f"{self.grace:g}s",
            )
        try:
            os.write(self._wake_w, b"s")
        except OSError:
            pass

    def _shutdown(self) -> None:
        self._closing = True  # a child that died now is not replaced
        if self._listener is not None:
            self._listener.stop()
        self._hand_back_buffer()
        for slot in self.slots:
            if slot.busy:
                self._collect(slot, block=False)  # outcomes already sent are kept, not handed back
            if slot.busy:
                slot.kill()
                self._requeue(slot)
                self._hand_back(slot)
            else:
                self._stop_child(slot)
        self._hand_back_buffer()
        self._flush(final=True)
        for _ in range(3):
            if self._reconcile():  # rows a lost claim reply left under our id, if any
                break
            time.sleep(min(self._db_backoff, 2.0))
        # The heartbeat goes on until the outcomes are written: a final write that waits for a
        # lock must not have its jobs rescued meanwhile.
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._listener is not None:
            self._listener.join(timeout=3)
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)
        close_old_connections()

    def _stop_child(self, slot: Slot) -> None:
        process = slot.process
        slot.close()  # EOF on its pipe: the child returns from its loop and exits
        if process is not None and process.is_alive():
            process.kill()
            process.join(timeout=5)

    # -- the loop -------------------------------------------------------------------------------

    def _busy(self) -> list[Slot]:
        return [s for s in self.slots if s.busy]

    def _loop(self) -> None:
        while True:
            self._loop_turned = time.monotonic()
            if self.force:
                return
            if self.stopping:
                self._hand_back_buffer()
                if not self._busy():
                    return
                if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
                    return
            self._apply_stop_requests()
            self._enforce_deadlines()
            self._run_services()
            self._dispatch_buffer()
            want = self._claim_target()
            if want == 0:
                # No room to claim: a job falling due now waits for a free child, whose reply
                # wakes the loop anyway, not for its announced time.
                self._claim_covered = time.time()
            claimed = 0
            if want > 0 or self._outcomes_due():
                claimed = self._sync(want)
                self._dispatch_buffer()
            if not self._busy() and not self.pending and not self.buffer:
                if self.burst and claimed == 0 and time.monotonic() >= self._db_down_until:
                    return
                if self.max_jobs is not None and self.claimed_total >= self.max_jobs:
                    return
            self._wait(idle_left=want > 0 and claimed == want)

    def _outcomes_due(self) -> bool:
        """Whether pending outcomes should be written now rather than with the next claim.

        Outcomes ride along with claims; on their own they are written once there are many,
        once the oldest has waited OUTCOME_DELAY, or when nothing else is going on.
        """
        if not self.pending:
            return False
        if len(self.pending) >= 100 or self.stopping:
            return True
        if not self.buffer and not self._busy():
            return True
        return time.monotonic() - self.pending[0].queued_at >= OUTCOME_DELAY

    def _claim_target(self) -> int:
        """How many jobs to claim now: the idle slots, plus a buffer while jobs are short.

        The buffer is refilled once it is down to half its size (or can't feed the idle slots),
        so a worker draining a long queue of short jobs claims about MAX_CLAIM / 2 per round
        trip instead of one or two.
        """
        if self.stopping or time.monotonic() < self._db_down_until:
            return 0
        idle = sum(1 for s in self.slots if not s.busy)
        # Idle children the buffer can't feed (jobs waiting inside other children can't move).
        starving = max(0, idle - len(self.buffer))
        room = self._buffer_size()
        # Jobs waiting in a child behind its running one count as buffered.
        held = len(self.buffer) + sum(max(0, len(s.jobs) - 1) for s in self.slots)
        if not starving and held > room // 2:
            return 0  # refill the buffer only once it is down to half
        want = starving + max(0, room - held)
        if self.max_jobs is not None:
            want = min(want, self.max_jobs - self.claimed_total)
        return max(0, want)

    def _buffer_size(self) -> int:
        """How many claimed jobs to keep waiting for a child (see CLAIM_AHEAD)."""
        if self._finished_total < WARMUP:
            # No average yet: a little ahead, unless the jobs seen so far are already long.
            if self._finished_total and self._avg_duration >= PREFETCH_BELOW:
                return 0
            return PREFETCH_FACTOR * self.concurrency
        if self._avg_duration >= PREFETCH_BELOW:
            return 0
        per_child = CLAIM_AHEAD / max(self._avg_duration, 1e-4)
        return int(min(MAX_CLAIM, self.concurrency * per_child))

    def _dispatch_buffer(self) -> None:
        idle = [s for s in self.slots if not s.busy]
        if not idle or not self.buffer or self.stopping:
            return  # (once stopping, the buffer is handed back instead)
        size = self._batch_size(len(idle))
        for slot in idle:
            if not self.buffer:
                return
            batch = [self.buffer.popleft()]
            size_bytes = _payload_bytes(batch[0])
            while self.buffer and len(batch) < size:
                size_bytes += _payload_bytes(self.buffer[0])
                if size_bytes > BATCH_BYTES:
                    break
                batch.append(self.buffer.popleft())
            self._dispatch(slot, batch)

    def _batch_size(self, idle: int) -> int:
        """How many buffered jobs to hand each idle child at once (see BATCH_WORK)."""
        if self._finished_total < WARMUP or self._avg_duration >= BATCH_BELOW:
            return 1
        share = -(-len(self.buffer) // idle)  # spread the buffer over the idle children
        return max(1, min(share, int(BATCH_WORK / max(self._avg_duration, 1e-5))))

    def _hand_back_buffer(self) -> None:
        while self.buffer:
            self._queue_outcome(self.buffer.popleft(), {"outcome": "handed_back"}, 0.0)

    def _wait(self, idle_left: bool) -> None:
        """Block until a child replies, a notification or signal arrives, or the next deadline."""
        now = time.monotonic()
        if self._db_down_until > now:
            timeout = self._db_down_until - now
        elif idle_left:
            timeout = 0.0  # the claim filled every idle slot: there may be more ready right away
        else:
            timeout = float(jobs_settings.POLL_INTERVAL)
        deadlines = [s.deadline for s in self.slots if s.deadline is not None]
        deadlines.extend(s.extra["stop_deadline"] for s in self.slots if "stop_deadline" in s.extra)
        if self._db_down_until <= now:
            # (While the database is down neither can run: their past deadlines would spin the loop.)
            deadlines.extend(self._service_due.values())
            if self.pending:
                deadlines.append(self.pending[0].queued_at + OUTCOME_DELAY)
        if self._listener is not None:
            due = self._listener.take_due(self._claim_covered)
            if due is not None:
                deadlines.append(due)
        if self.stop_deadline is not None:
            deadlines.append(self.stop_deadline)
        # Go round at least once per heartbeat interval, so the heartbeat can tell a stalled
        # loop from an idle one.
        timeout = min(timeout, float(jobs_settings.HEARTBEAT_INTERVAL))
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - now))
        conns: list[Any] = [s.conn for s in self._busy() if s.conn is not None]
        # Every child's exit too: a child can die while a process it forked keeps its socket open,
        # and then only this tells.
        exits: dict[Any, Slot] = {s.exit_fd: s for s in self.slots if s.process is not None}
        ready = wait(conns + list(exits) + [self._wake_r], timeout)
        exited = []
        for item in ready:
            if item == self._wake_r:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            if item in exits:
                exited.append(exits[item])
                continue
            slot = next(s for s in self.slots if s.conn is item)
            self._collect(slot)
        for slot in exited:
            self._child_exited(slot)

    def _run_services(self) -> None:
        if self.stopping or time.monotonic() < self._db_down_until:
            return
        for service in self.services:
            if time.monotonic() < self._service_due[id(service)]:
                continue
            try:
                with self._db_call():
                    delay = service.run(self.clock())
                self._db_ok()
            except _DB_DOWN as exc:
                self._db_lost(exc)
                return
            except Exception:  # noqa: BLE001 - a broken service must not stop the worker
                logger.exception(
                    "django_jobs event=service_failed service=%s worker=%s", service.name, self.worker_id
                )
                delay = 5.0
            self._service_due[id(service)] = time.monotonic() + max(0.0, delay)

    # -- claiming and dispatching ---------------------------------------------------------------

    def _paused_lists(self) -> tuple[list[str], list[str]]:
        expires, queues, names = self._paused
        if time.monotonic() >= expires:
            with self._db_call():
                queues, names = claims.paused(self.using)
            self._paused = (time.monotonic() + 1.0, queues, names)
        return queues, names

    def _sync(self, limit: int) -> int:
        """Write pending outcomes and claim up to ``limit`` jobs in one round trip; return the
        number claimed (they go to the buffer)."""
        if time.monotonic() < self._db_down_until or not self._reconcile():
            return 0
        batch = self.pending[:500]
        writes = [self._outcome_write(o) for o in batch]
        try:
            paused_queues, paused_names = self._paused_lists() if limit > 0 else ([], [])
            covered = time.time()  # read before the claim's clock: never later than its "now"
            now = self.clock()
            with self._db_call():
                written, rows = claims.sync(
                    self.using,
                    worker_id=self.worker_id,
                    outcomes=writes,
                    limit=limit,
                    now=now,
                    queues=self.queues,
                    paused_queues=paused_queues,
                    paused_names=paused_names,
                )
        except _DB_DOWN as exc:
            self._reply_lost(batch, exc)
            return 0
        except Exception as exc:  # noqa: BLE001 - the database or the driver refused the batch
            # Something in the batch can't be stored (it should have been caught earlier): write
            # the outcomes one by one so one bad row can't sink the others. Nothing was claimed.
            log_event("outcome_batch_refused", logging.ERROR, worker=self.worker_id,
                      error=f"{type(exc).__name__}: {exc}"[:200])
            self._write_one_by_one(batch)
            return 0
        del self.pending[: len(batch)]
        if limit > 0:
            self._claim_covered = covered
        self.claimed_total += len(rows)
        known = [r for r in rows if r["name"] in registry]
        self.buffer.extend(known)
        self._publish_held()
        self._db_ok()
        self._announce(batch, written)
        if len(known) < len(rows):
            self._mark_unregistered([r for r in rows if r["name"] not in registry], now)
        return len(rows)

    def _mark_unregistered(self, rows: list[dict[str, Any]], now: datetime) -> None:
        try:
            with self._db_call():
                claims.mark_unregistered(self.using, rows, self.worker_id, now)
        except _DB_DOWN as exc:
            self._db_lost(exc)  # still running and not held: _reconcile() gives them back
            return
        for row in rows:
            log_event("unregistered", logging.ERROR, job=row["id"], name=row["name"], worker=self.worker_id)

    @contextlib.contextmanager
    def _db_call(self) -> Iterator[None]:
        """Mark the main loop as waiting for the database (see _waiting_on_lock)."""
        wrapper = connections[self.using]
        self._db_wrapper = wrapper if wrapper.vendor == "postgresql" else None
        self._db_call_since = time.monotonic()
        try:
            yield
        finally:
            self._db_call_since = None

    def _reply_lost(self, batch: list[Outcome], exc: BaseException) -> None:
        """A statement failed with the connection: it may still have committed (the reply is what
        got lost), so its outcomes may be written and its claim may hold rows we never saw."""
        for outcome in batch:
            outcome.unsure = True
        self._db_lost(exc)

    def _reconcile(self) -> bool:
        """After a lost reply, give back the rows claimed for this worker that it never received.

        Only this worker claims rows under its id, and it holds every row it received until the
        outcome is written, so a running row of its own that it doesn't hold came from a claim
        whose reply was lost: it never started, and goes back without spending an attempt.
        Returns False while the database is unreachable.
        """
        if not self._unsure:
            return True
        try:
            with self._db_call():
                ids = claims.hand_back_unheld(
                    self.using, self.worker_id, self._held_attempts() | self._unwritable, self.clock()
                )
        except _DB_DOWN as exc:
            self._db_lost(exc)
            return False
        self._unsure = False
        if ids:
            log_event("claim_reply_lost", logging.WARNING, worker=self.worker_id, jobs=len(ids),
                      note="claimed by a statement whose reply never arrived; handed back unstarted")
        return True

    def _dispatch(self, slot: Slot, rows: list[dict[str, Any]]) -> None:
        now = self.clock()
        try:
            if slot.conn is None:
                slot.start()  # its child exited while idle (see _child_exited)
            try:
                slot.send(rows, self.using, now)
            except OSError:
                # The child died while idle: replace it and hand the jobs to the new one.
                slot.close()
                slot.start()
                try:
                    slot.send(rows, self.using, now)
                except OSError as exc:
                    slot.kill()
                    raise ChildStartFailed(
                        f"child process {slot.index + 1} exited as soon as it started ({exc})"
                    ) from exc
        except ChildStartFailed:
            self.buffer.extendleft(reversed(rows))  # handed back at shutdown
            raise
        if job_started.has_listeners(Job):
            for row in rows:
                self._send(job_started, sender=Job, job_id=row["id"], name=row["name"],
                           attempt=row["attempt"], worker_id=self.worker_id)

    # -- outcomes -------------------------------------------------------------------------------

    def _collect(self, slot: Slot, block: bool = True) -> None:
        """Record the replies the slot's child has sent; if the child died, its job is lost."""
        replies, closed = slot.receive(block)
        self._take_replies(slot, replies)
        if closed:
            # Replies it sent before dying are taken above: only the job it was running is lost
            # (the ones behind it never started and go back to the buffer).
            assert slot.process is not None
            slot.process.join(timeout=5)
            if slot.job is None:
                slot.close()  # the next dispatch starts a new child (see _child_exited)
                return
            self._replace_child(slot, _failure(
                "lost", "WorkerLost", f"{slot.exit_description()} before the job finished"
            ))

    def _take_replies(self, slot: Slot, replies: list[dict[str, Any]]) -> None:
        for reply in replies:
            job = slot.job
            try:
                mine = job is not None and reply["pid"] == slot.pid and reply["id"] == job["id"] and (
                    reply["a"] == job["attempt"])
            except (KeyError, TypeError):  # not a reply
                mine = False
            if mine:
                self._finish(slot, reply)
                continue
            # Replies are the child's, for its running job, in order: anything else (a process the
            # job forked writing to the socket) must never become some job's outcome.
            log_event(
                "reply_refused", logging.ERROR, worker=self.worker_id, child=slot.pid,
                sender=reply.get("pid") if isinstance(reply, dict) else None,
                job=reply.get("id") if isinstance(reply, dict) else None,
                running=job["id"] if job is not None else None,
            )

    def _child_exited(self, slot: Slot) -> None:
        """The slot's child exited (seen by its exit_fd): record what it sent, end the
        job it was running as lost, and start a new child.

        Its socket may still be open in a process it forked, so its end can't be seen there.
        """
        if slot.busy:
            self._collect(slot, block=False)
        if slot.process is None or slot.process.exitcode is None:
            # Replaced meanwhile (_collect saw the socket close); the exit_fd's number may even
            # belong to the new child.
            return
        if slot.busy:
            self._replace_child(slot, _failure(
                "lost", "WorkerLost", f"{slot.exit_description()} before the job finished"
            ))
        else:
            # An idle child: the next dispatch starts a new one (not now, so a child that can't
            # live never makes the worker fork in a loop).
            log_event("child_exited", logging.WARNING, worker=self.worker_id, child=slot.pid,
                      note=slot.exit_description().replace(" running it", ""))
            slot.close()

    def _replace_child(self, slot: Slot, reply: dict[str, Any]) -> None:
        """End the slot's running job with ``reply`` and start a new child in place of this one
        (killed if still alive). The jobs waiting behind it go back to the head of the buffer:
        they never started, so they spend no attempt."""
        slot.kill()
        self._requeue(slot)
        self._finish(slot, reply)
        if not self._closing:
            slot.start()

    def _requeue(self, slot: Slot) -> None:
        self.buffer.extendleft(reversed(slot.take_waiting()))

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            stop_at = slot.extra.get("stop_deadline")
            if stop_at is not None and now >= stop_at and slot.job is not None:
                # The job may have returned at the last moment, and the child started the next
                # one of its batch: read what it sent before killing anything.
                self._collect(slot, block=False)
                if slot.job is None or slot.extra.get("stop_deadline") != stop_at:
                    continue
                grace = float(jobs_settings.STOP_GRACE)
                self._replace_child(slot, {
                    "outcome": "stopped", "reason": f"stopped on request; killed after {grace:g}s stop grace",
                })
        for slot in self.slots:
            if slot.deadline is not None and now >= slot.deadline and slot.job is not None:
                # Replies already sent move the deadline on to the job that is really running.
                self._collect(slot, block=False)
                if slot.deadline is None or now < slot.deadline or slot.job is None:
                    continue
                timeout = slot.job.get("timeout")
                self._replace_child(slot, _failure(
                    "timeout", "JobTimeout", f"the attempt ran past its {timeout:g}s timeout and was killed"
                ))

    def _hand_back(self, slot: Slot) -> None:
        """Shutdown ran out of grace: give the job back to the queue without spending an attempt."""
        while slot.job is not None:
            self._finish(slot, {"outcome": "handed_back"})

    def _finish(self, slot: Slot, reply: dict[str, Any]) -> None:
        """Queue the outcome of the slot's running job for the next round trip to write."""
        assert slot.job is not None
        # The child measures its jobs; replies made up here (timeout, lost, handed back) last
        # from the job's start to now.
        duration = reply.pop("d", None)
        if duration is None:
            duration = time.monotonic() - slot.started
        # An exponential moving average of job durations decides how far to claim ahead; the first
        # job sets it, so one hour-long job is enough to stop claiming ahead.
        if self._finished_total:
            self._avg_duration = 0.9 * self._avg_duration + 0.1 * duration
        else:
            self._avg_duration = duration
        self._finished_total += 1
        now = self.clock()
        started_at = slot.started_at or now
        row = slot.finished(reply, now)
        self.pending.append(Outcome(row, reply, duration, started_at, now))

    def _queue_outcome(
        self, row: dict[str, Any], reply: dict[str, Any], duration: float, started_at: datetime | None = None
    ) -> None:
        """Queue the outcome of a job that isn't in a slot (buffered, or run by django_jobs.testing)."""
        finished_at = self.clock()
        self.pending.append(Outcome(row, reply, duration, started_at or finished_at, finished_at))

    def _flush(self, final: bool = False) -> None:
        """Write pending outcomes; on a database outage keep them and try again later.

        Outcomes are batched: everything collected since the last flush goes in one UPDATE and one
        commit. A crash before the flush loses no job: it is still ``running`` in the table and
        rescue runs it again (the at-least-once window, see docs/explanation/guarantees.md).
        """
        if not self.pending or (not final and time.monotonic() < self._db_down_until):
            return
        for _ in range(5 if final else 1):
            if not self._reconcile():
                if final:
                    time.sleep(min(self._db_backoff, 2.0))
                continue
            batch = self.pending[:500]
            try:
                with self._db_call():
                    written = claims.record_outcomes(
                        self.using, self.worker_id, [self._outcome_write(o) for o in batch]
                    )
            except _DB_DOWN as exc:
                self._reply_lost(batch, exc)
                if final:
                    time.sleep(min(self._db_backoff, 2.0))
                continue
            except Exception as exc:  # noqa: BLE001 - the database or the driver refused the batch
                log_event("outcome_batch_refused", logging.ERROR, worker=self.worker_id,
                          error=f"{type(exc).__name__}: {exc}"[:200])
                self._write_one_by_one(batch)
            else:
                del self.pending[: len(batch)]
                self._publish_held()
                self._db_ok()
                self._announce(batch, written)
            if not self.pending:
                return
        for outcome in self.pending:
            log_event(
                "outcome_unwritten", logging.ERROR, job=outcome.slot_job["id"], worker=self.worker_id,
                note="the database stayed unreachable; the job stays running until rescued",
            )

    def _write_one_by_one(self, batch: list[Outcome]) -> None:
        """Write each outcome alone; one the database refuses is recorded as a failure of its
        attempt (OutcomeNotStorable). Outcomes not reached while the database is down stay pending."""
        for outcome in batch:
            try:
                with self._db_call():
                    try:
                        written = claims.record_outcomes(self.using, self.worker_id, [self._outcome_write(outcome)])
                    except _DB_DOWN:
                        raise
                    except Exception as exc:  # noqa: BLE001 - anything but the connection: store why
                        refused = {"class": "django_jobs.exceptions.OutcomeNotStorable",
                                   "message": storable(f"the database refused this attempt's outcome: "
                                                       f"{type(exc).__name__}: {exc}")[:1000],
                                   "traceback": ""}
                        outcome.reply = {"outcome": "failed", "retryable": False, "error": refused}
                        written = claims.record_outcomes(
                            self.using, self.worker_id, [self._outcome_write(outcome)]
                        )
            except _DB_DOWN as exc:
                self._reply_lost([outcome], exc)
                return
            except Exception:  # noqa: BLE001 - even the failure can't be stored: rescue will retry
                logger.exception("django_jobs event=outcome_unwritable job=%s worker=%s",
                                 outcome.slot_job["id"], self.worker_id)
                # The row stays running and is no longer held: rescue records the attempt as lost
                # RESCUE_AFTER later (it ran, so it isn't handed back as unstarted).
                self._unwritable.add((outcome.slot_job["id"], outcome.slot_job["attempt"]))
                written = {}
            self.pending.remove(outcome)
            self._publish_held()
            self._announce([outcome], written)

    def _announce(self, batch: list[Outcome], written: dict[int, str]) -> None:
        listening = job_finished.has_listeners(Job)
        unsure = [(o.slot_job["id"], o.slot_job["attempt"]) for o in batch
                  if o.unsure and o.slot_job["id"] not in written]
        unconfirmed: set[int] = set()
        if unsure:
            # Written by the statement whose reply was lost? Then the fence refused the second write.
            try:
                with self._db_call():
                    written = {**written, **claims.outcomes_written(self.using, self.worker_id, unsure)}
            except _DB_DOWN as exc:
                self._db_lost(exc)
                unconfirmed = {job_id for job_id, _ in unsure}
        for outcome in batch:
            row = outcome.slot_job
            status = written.get(row["id"])
            if status is None and row["id"] in unconfirmed:
                log_event(
                    "outcome_unconfirmed", logging.WARNING, job=row["id"], attempt=row["attempt"],
                    worker=self.worker_id, note="a first write's reply was lost and the database went "
                    "away again before the worker could tell whether it was written",
                )
                continue
            if status is None:
                log_event(
                    "outcome_fenced", logging.WARNING, job=row["id"], attempt=row["attempt"],
                    worker=self.worker_id, note="the claim was lost (rescued elsewhere); outcome dropped",
                )
                continue
            if listening:
                self._send(
                    job_finished, sender=Job, job_id=row["id"], name=row["name"], attempt=row["attempt"],
                    worker_id=self.worker_id, status=status, outcome=outcome.reply["outcome"],
                    duration=outcome.duration, error=outcome.reply.get("error"),
                )

    def _outcome_write(self, outcome: Outcome) -> claims.OutcomeWrite:
        """Turn a child's reply into the row update that records it.

        A reply that can't be turned into one (nothing a job returns should do that) is logged
        and recorded as a failure of the attempt: no reply may stop the worker.
        """
        try:
            return self._decide_write(outcome)
        except Exception as exc:  # noqa: BLE001
            logger.exception("django_jobs event=outcome_invalid job=%s worker=%s",
                             outcome.slot_job.get("id"), self.worker_id)
            outcome.reply = {"outcome": "failed", "retryable": False, "error": {
                "class": "django_jobs.exceptions.OutcomeNotStorable",
                "message": storable(f"the worker could not record this attempt's outcome: "
                                    f"{type(exc).__name__}: {exc}")[:1000],
                "traceback": ""}}
            return self._decide_write(outcome)

    def _decide_write(self, outcome: Outcome) -> claims.OutcomeWrite:
        row = outcome.slot_job
        attempt = lifecycle.Attempt(
            job_id=row["id"], name=row["name"], attempt=row["attempt"], max_attempts=row["max_attempts"],
            worker_id=self.worker_id, started_at=outcome.started_at, duration=outcome.duration,
        )
        definition = registry.get(row["name"])
        backoff = definition.effective_backoff if definition is not None else None
        t = lifecycle.decide(attempt, lifecycle.Ended.from_reply(outcome.reply), outcome.finished_at, backoff)
        return claims.OutcomeWrite(
            job_id=row["id"], attempt=row["attempt"], status=t.status, ended_at=outcome.finished_at,
            history_entry=t.history_entry, run_at=t.run_at, set_result=t.set_result, result=t.result,
            last_error=t.last_error, attempts_delta=t.attempts_delta, max_attempts_delta=t.max_attempts_delta,
        )

    def _send(self, signal_: Any, **kwargs: Any) -> None:
        """Send a signal; a receiver that raises is logged, never allowed to stop the worker."""
        for receiver, result in signal_.send_robust(**kwargs):
            if isinstance(result, Exception):
                logger.error(
                    "django_jobs event=receiver_failed receiver=%s job=%s error=%r",
                    getattr(receiver, "__qualname__", receiver), kwargs.get("job_id"), result,
                    exc_info=result,
                )

    # -- database health ------------------------------------------------------------------------

    def _db_lost(self, exc: BaseException) -> None:
        log_event(
            "db_unavailable", logging.WARNING, worker=self.worker_id,
            error=str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__,
            retry_in=f"{self._db_backoff:.1f}s",
        )
        try:
            connections[self.using].close()
        except DatabaseError:
            pass
        connections[self.using].connection = None
        self._db_down_until = time.monotonic() + self._db_backoff
        self._db_backoff = min(self._db_backoff * 2, 30.0)
        # A statement cut off with its connection may still have committed (see _reconcile).
        self._unsure = True

    def _db_ok(self) -> None:
        if self._db_backoff != float(jobs_settings.RECONNECT_BACKOFF):
            log_event("db_available", worker=self.worker_id)
        self._db_backoff = float(jobs_settings.RECONNECT_BACKOFF)
        self._db_down_until = 0.0
