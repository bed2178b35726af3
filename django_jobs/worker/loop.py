"""The worker loop behind ``manage.py runjobs``: claim, hand to a child, record the outcome.

The main process owns every database write about jobs; children only run job functions. It never
holds a transaction open while a job runs: the claim is one autocommitted statement and so is each
outcome write.

The loop only sequences its parts: the ``ledger`` (claimed jobs, pending outcomes, the round trip
that writes the ones and claims the others), the ``pool`` of children, the ``claim_ahead`` policy,
``presence`` (the worker's row, heartbeats, stop requests), the ``listener`` and the maintenance
services.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import close_old_connections, connections
from django.utils import timezone

from ..conf import jobs_settings
from ..db import claims, connection
from ..log import log_event
from ..services import ServiceContext, default_services
from .claim_ahead import ClaimAhead
from .ledger import Ledger
from .listener import Listener
from .maintenance import Maintenance
from .pool import ChildStartFailed, Pool, Slot
from .presence import Presence, default_worker_id
from .reconnect import DB_DOWN, DatabaseLink
from .shutdown import ShutdownFlag

# After a claim that came back with fewer jobs than it asked for (nothing more was ready for this
# worker), the loop doesn't claim again on each reply of its children while they still run jobs:
# only once it is woken (a notification: an enqueue, a pause lifted; a signal), an announced job
# falls due, its outcomes released workflow jobs, or DRY_FOR has passed. Outcomes are written when
# due (Ledger.outcomes_due) instead of riding along with claims that find nothing. Without it a
# worker whose children run limited jobs (claimed by the gated claim, never by this one) ran a
# round trip on every reply, each with the few outcomes that had come in, and a limited job's
# round trips carried half the jobs they could. A job that becomes ready without a notification
# (a retry due at once, a job another worker handed back) waits at most DRY_FOR for this worker,
# as before for an idle worker's POLL_INTERVAL.
DRY_FOR = 0.05


@dataclass
class WorkerLoop:
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
    #: In burst mode, also wait for jobs (a retry's backoff, a delay) that fall due within this
    #: many seconds of running out of ready ones (``runjobs --due-within``); 0 exits at once.
    due_within: float = 0.0

    def __post_init__(self) -> None:
        self.stopping = False
        self.stop_deadline: float | None = None
        #: Why run() returned non-zero (None while it hasn't).
        self.failure: str | None = None
        self.force = False
        #: When (monotonic) the job a burst waits for falls due (see due_within).
        self._due_at: float | None = None
        #: Until when (monotonic) the plain claim waits for a reason to look again (see DRY_FOR).
        self._dry_until = -math.inf
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._listener: Listener | None = None
        self.context = ServiceContext(using=self.using, worker_id=self.worker_id, clock=self.clock)
        self.link = DatabaseLink(self.using, self.worker_id)
        self.claim_ahead = ClaimAhead(self.concurrency)
        slots = [Slot(i, self.worker_id) for i in range(self.concurrency)]
        self.ledger = Ledger(context=self.context, queues=self.queues, link=self.link, children=slots)
        #: Set when a graceful shutdown begins: jobs see it as current_job().stop_requested.
        self.shutdown_flag = ShutdownFlag()
        self.pool = Pool(slots, context=self.context, ledger=self.ledger, claim_ahead=self.claim_ahead,
                         shutdown=self.shutdown_flag)
        # PID 1 inherits every orphan in its PID namespace, and must reap them.
        self._reaper = os.getpid() == 1
        ledger = self.ledger
        self.presence = Presence(context=self.context, queues=self.queues, concurrency=self.concurrency,
                                 link=self.link, held=lambda: ledger.held, wake_fd=self._wake_w)
        self.maintenance = Maintenance(default_services(self.context, scheduler=self.scheduler),
                                       link=self.link, clock=self.clock, worker_id=self.worker_id)

    @property
    def claimed_total(self) -> int:
        """How many jobs this worker has claimed."""
        return self.ledger.claimed_total

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped (or, in burst mode, until nothing is ready); return the exit code."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self.presence.register()
        self.ledger.publish_held()
        code = 0
        try:
            # The fork server (and, without one, the children) is forked before any thread starts,
            # and inherits no open database connection.
            connections.close_all()
            self.pool.start()
            if connection.is_postgres(self.using) and jobs_settings.LISTEN_NOTIFY:
                self._listener = Listener(self.using, self._wake_w, set(self.queues))
                self._listener.start()
            self.presence.start_heartbeat()
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
        self.presence.unregister()
        log_event("worker_stopped", worker=self.worker_id, jobs=self.claimed_total)
        return code

    def _loop(self) -> None:
        while True:
            self.presence.loop_turned = time.monotonic()
            if self._reaper:
                self.pool.reap_orphans()
            if self.force:
                return
            if self.stopping:
                self.ledger.hand_back_buffer()
                if not self.pool.busy():
                    return
                if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
                    return
            self._apply_stop_requests()
            self.pool.enforce_deadlines()
            if not self.stopping:
                self.maintenance.run_due()
                self.pool.dispatch_buffer()  # (once stopping, the buffer is handed back instead)
            want = self._claim_target()
            if want == 0:
                # No room to claim: a job falling due now waits for a free child, whose reply
                # wakes the loop anyway, not for its announced time.
                self.ledger.claim_covered = time.time()
            dry = want > 0 and self.pool.busy() and time.monotonic() < self._dry_until
            if dry:
                want = 0  # the last claim found the queue dry (see DRY_FOR)
            claimed = 0
            if want > 0 or self.ledger.outcomes_due(self.stopping, self.pool.busy()):
                claimed = self.ledger.sync(want)
                if want > 0:
                    self._dry_until = time.monotonic() + DRY_FOR if self.ledger.claimed_short else -math.inf
            if self.ledger.row_gone and self.presence.write_row_again(sorted(self.ledger.declared)):
                self.ledger.row_gone = False
            if not self.stopping:
                # The jobs just claimed go to children before the gated claim's round trip.
                self.pool.dispatch_buffer()
                # Jobs flow control may hold (db/gates.py): for the idle children, and ahead as far
                # as the plain claim left room; rate-held ones only for idle children.
                room = self._gated_room()
                claimed += self.ledger.claim_gated(max(room, self._gated_ahead()), free=room)
                self.pool.dispatch_buffer()
            released, self.ledger.released = self.ledger.released, 0  # (workflows: see Ledger.released)
            if not self.pool.busy() and not self.ledger.pending and not self.ledger.buffer:
                if (self.burst and claimed == 0 and not released and not self.link.is_down()
                        and not self.ledger.gates_contended and not self._due_soon()):
                    return
                if self.max_jobs is not None and self.claimed_total >= self.max_jobs:
                    return
            if not self.stopping:
                self.ledger.refresh_pauses()
            # (Whether the claim filled what it asked for: the gated claim's jobs and the handed-over
            # ones are not its, and counting them let a dry claim pass for a full one.)
            self._wait(idle_left=(want > 0 and not self.ledger.claimed_short) or released > 0, dry=dry)

    def _claim_target(self) -> int:
        """How many jobs to claim now (see ClaimAhead.claim_target)."""
        if self.stopping or self.link.is_down():
            return 0
        left = None if self.max_jobs is None else self.max_jobs - self.claimed_total
        return self.claim_ahead.claim_target(
            self.pool.idle(), len(self.ledger.buffer), self.pool.waiting(), left
        )

    def _due_soon(self) -> bool:
        """Whether a burst should wait: a job of its queues falls due within ``due_within``."""
        self._due_at = None
        if self.due_within <= 0:
            return False
        now = self.clock()
        try:
            with self.link.call():
                due = claims.next_due(self.using, self.queues, after=now,
                                      until=now + timedelta(seconds=self.due_within))
        except DB_DOWN as exc:
            self.link.lost(exc)
            return True  # look again once the database is back
        if due is None:
            return False
        self._due_at = time.monotonic() + (due - now).total_seconds()
        return True

    def _gated_room(self) -> int:
        """Idle children not already promised to a gated job in the buffer."""
        if self.stopping or self.link.is_down():
            return 0
        room = self.pool.idle() - self.ledger.gated_in_buffer()
        if self.max_jobs is not None:
            room = min(room, self.max_jobs - self.claimed_total)
        return max(room, 0)

    def _gated_ahead(self) -> int:
        """How many gated jobs to claim ahead: the room in their share of the buffer, refilled
        whenever there is room (a gated claim walks every key, so each one should take all it can)."""
        if self.stopping or self.link.is_down():
            return 0
        held = len(self.ledger.buffer) + self.pool.waiting()
        ahead = self.claim_ahead.gated_buffer_size() + self.pool.idle() - held
        if self.max_jobs is not None:
            ahead = min(ahead, self.max_jobs - self.claimed_total)
        return max(ahead, 0)

    def _wait(self, idle_left: bool, dry: bool = False) -> None:
        """Block until a child replies, a notification or signal arrives, or the next deadline
        (``dry``: this turn left out a claim for DRY_FOR, whose end is one)."""
        now = time.monotonic()
        down_until = self.link.down_until
        if down_until > now:
            timeout = down_until - now
        elif idle_left:
            timeout = 0.0  # the claim filled every idle slot: there may be more ready right away
        else:
            timeout = float(jobs_settings.POLL_INTERVAL)
        deadlines = self.pool.deadlines()
        if down_until <= now:
            # (While the database is down neither can run: their past deadlines would spin the loop.)
            deadlines.extend(self.maintenance.due.values())
            next_write = self.ledger.next_write()
            if next_write is not None:
                deadlines.append(next_write)
            if dry:
                deadlines.append(self._dry_until)
        due = None
        if self._listener is not None:
            due = self._listener.take_due(self.ledger.claim_covered)
            if due is not None:
                deadlines.append(due)
        if self.stop_deadline is not None:
            deadlines.append(self.stop_deadline)
        if self.ledger.gate_due is not None:
            deadlines.append(self.ledger.gate_due)
        if self._due_at is not None:
            deadlines.append(self._due_at)
        # Go round at least once per heartbeat interval, so the heartbeat can tell a stalled
        # loop from an idle one.
        timeout = min(timeout, float(jobs_settings.HEARTBEAT_INTERVAL))
        if deadlines:
            timeout = max(0.0, min(timeout, min(deadlines) - now))
        if self.pool.wait(timeout, self._wake_r):
            self.ledger.gated_woken = True  # woken by a notification or a signal
            self._dry_until = -math.inf
        elif idle_left or (due is not None and time.monotonic() >= due):
            self._dry_until = -math.inf  # jobs were released, or one announced falls due now

    # -- stop requests and signals --------------------------------------------------------------

    def _apply_stop_requests(self) -> None:
        if self._listener is not None and self._listener.control.is_set():
            self._listener.control.clear()
            self.ledger.forget_pauses()
            try:
                with self.link.call():
                    self.presence.request_stops(claims.stop_requested(self.using, self.ledger.held_ids()))
            except DB_DOWN as exc:
                self.link.lost(exc)
        ids = self.presence.stop_requests()
        if ids is None:
            return
        self.ledger.stop_buffered(ids)
        self.pool.stop(ids, float(jobs_settings.STOP_GRACE))
        self.presence.keep_stop_requests(self.ledger.held_ids())

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.stopping:
            self.force = True
            log_event("worker_stopping", worker=self.worker_id, mode="now", signal=signal.Signals(signum).name)
        else:
            self.stopping = True
            self.shutdown_flag.set()  # running jobs now see stop_requested
            self.ledger.stopping_now = True
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
        self.pool.closing = True  # a child that died now is not replaced
        if self._listener is not None:
            self._listener.stop()
        self.ledger.hand_back_buffer()
        self.pool.shutdown()
        self.pool.stop_server()
        self.ledger.hand_back_buffer()
        self.ledger.flush(final=True)
        for _ in range(3):
            if self.ledger.reconcile():  # rows a lost claim reply left under our id, if any
                break
            time.sleep(min(self.link.backoff, 2.0))
        # The heartbeat goes on until the outcomes are written: a final write that waits for a
        # lock must not have its jobs rescued meanwhile.
        self.presence.stop_heartbeat()
        if self._listener is not None:
            self._listener.join(timeout=3)
        self.presence.join_heartbeat()
        os.close(self._wake_r)
        os.close(self._wake_w)
        close_old_connections()
