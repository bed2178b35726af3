"""The ledger: the jobs a worker has claimed and the outcomes it has yet to write.

Every job a worker holds is in one of three places: the ledger's ``buffer`` (claimed, waiting for
a child), a child of the pool (sent, running or waiting behind the running one), or the ledger's
``pending`` outcomes (ended, not yet written). Only a claim adds to them and only an outcome write
removes from them, and both happen here, in ``sync()`` and ``flush()``, so the ids published for
the heartbeat (``held``) never miss a job the worker holds.

Outcomes are written in batches, with the next claim when there is one (``sync()``): one
statement and one commit for everything collected since the last round trip. ``Ledger.inline()``
is the same ledger without children, for running jobs in this process (django_jobs.testing).

A job goes to a child only once it is ``declared``: the same round trip wrote its id into the
worker's row (Worker.may_start), so if the worker dies, rescue can tell the jobs that may have
started from those that provably didn't (given back without spending an attempt). Each round trip
declares a window of the buffer ahead (``declare_ahead``, set by the pool), and a job on its last
attempt (``last_attempt``) only while fewer than one per child are declared with their outcome not
yet written: if the worker dies, no more of them end ``dead`` than it has children.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from .. import flow, lifecycle
from ..conf import jobs_settings
from ..db import channel, claims, gates
from ..log import log_event
from ..models import CONTROL_PARKED, Job
from ..registry import registry
from ..services import ServiceContext
from ..signals import job_finished
from ..text import storable
from .reconnect import DB_DOWN, DatabaseLink

if TYPE_CHECKING:  # the pool imports this module (for Outcome)
    from .pool import Slot

logger = logging.getLogger("django_jobs")

# The longest a gated job's outcome waits for others to be written with it while children still
# run: it frees a slot of a limit (or a sequence's turn) that other jobs wait for, and its
# statement hands the slot over (claims._HANDOFF). Bench G measured 0 to 5 ms: 1 ms was best.
GATED_OUTCOME_DELAY = 0.001
# The longest an outcome waits to be written with the next claim before it is written alone.
OUTCOME_DELAY = 0.05
# The least time between two gated claims a wake-up asks for (a notification: an enqueue, usually
# of a job no gate holds). A burst of enqueues wakes the worker thousands of times a second, and
# each gated claim walks every key and sequence: spaced out, a burst costs at most 200 of them a
# second, and a job a gate may hold waits at most this long for its first claim. A freed slot or
# a rate's window asks at once (gated_dirty), as before.
GATED_WAKE_SPACING = 0.005
# How soon a worker under its fair share of slots (flow.fair_share) claims again while other
# workers hold more than theirs: they give slots back as their jobs end (see _handoffs). Only for
# GATED_CROWDED_FOR seconds after its share changed (a worker joined or left): others may hold more
# than their share for good (an older version's worker, a worker of other queues, a dead one not
# yet rescued), and then the slots they free are found at the next ordinary gated claim.
GATED_CROWDED_POLL = 0.02
GATED_CROWDED_FOR = 2.0
# The pauses and the operators' limits (three statements) are read again once this old, at the
# end of a loop turn, where the time is the worker's own (refresh_pauses); a claim reads them
# first only past PAUSES_STALE, so a job picked up on a wake-up never waits for them. A change
# made in the admin sends a notification that drops them at once (forget_pauses).
PAUSES_FRESH = 1.0
PAUSES_STALE = 2.0

#: The ids of the jobs a worker holds, and when it listed them (see Ledger.publish_held).
Held = tuple[tuple[int, ...], datetime | None]


def last_attempt(row: dict[str, Any]) -> bool:
    """Whether a claimed job is on its last attempt (every attempt of a ``max_attempts=1`` job):
    lost, it ends ``dead``, so it goes to a child alone and one per child (see Ledger)."""
    return bool(row["attempt"] >= row["max_attempts"])


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


def send_signals(signal_: Any, calls: Iterable[dict[str, Any]]) -> None:
    """Send ``signal_`` from Job once per set of keyword arguments in ``calls``, as send_robust()
    would: a receiver that raises is logged, never allowed to stop the worker.

    The receivers are looked up once for all of them, with the lookup send_robust() itself makes
    (``Signal._live_receivers``, the same in Django 5.2 and 6): a worker sends two signals per job,
    and looking them up again for each took 5 of the main process's ~40 µs of CPU per job of a
    drain. Async receivers go through send_robust(), one call at a time.
    """
    receivers, async_receivers = signal_._live_receivers(Job)
    for kwargs in calls:
        if async_receivers:
            results = signal_.send_robust(sender=Job, **kwargs)
        else:
            results = []
            for receiver in receivers:
                try:
                    receiver(signal=signal_, sender=Job, **kwargs)
                except Exception as exc:  # noqa: BLE001 - logged below, as send_robust() returns it
                    results.append((receiver, exc))
        for receiver, result in results:
            if isinstance(result, Exception):
                logger.error(
                    "django_jobs event=receiver_failed receiver=%s job=%s error=%r",
                    getattr(receiver, "__qualname__", receiver), kwargs.get("job_id"), result,
                    exc_info=result,
                )


def holds_slot(row: dict[str, Any]) -> bool:
    """Whether a claimed job holds a slot of a limit: db/gates.py marks the ones it claimed, and
    a job handed a slot as another ended (claims._HANDOFF) holds one."""
    return bool(row.get("gated")) and row.get("slotted", True)


class Ledger:
    """The claimed jobs (``buffer``) and pending outcomes (``pending``) of one worker."""

    def __init__(
        self, *, context: ServiceContext, queues: list[str], link: DatabaseLink, children: Sequence[Slot],
    ) -> None:
        self.using, self.worker_id, self.clock = context.using, context.worker_id, context.clock
        self.queues = queues
        self.link = link
        # The pool's slots: the jobs sent to children are held too (see held_ids).
        self.children = children
        #: Claimed jobs waiting for a free child, in claim order.
        self.buffer: deque[dict[str, Any]] = deque()
        #: Outcomes not yet written, oldest first. Appended to in place by the pool.
        self.pending: list[Outcome] = []
        self.claimed_total = 0
        #: Jobs the written outcomes queued (workflows) since the loop last took the count: they
        #: were invisible to the claim in the same statement, so the loop claims again at once.
        self.released = 0
        #: Epoch time up to which announced run_at times are covered by a claim (see
        #: Listener.take_due).
        self.claim_covered = 0.0
        #: The held ids as last published, for the heartbeat thread (see publish_held).
        self.held: Held = ((), None)
        #: (when they were read (monotonic), paused queues, paused names)
        self._paused: tuple[float, list[str], list[str]] = (-math.inf, [], [])
        # Flow control (db/gates.py): the limits in effect, read with the pauses.
        self.limits = flow.Limits()
        self._gated = False
        #: Set when a gated claim may find something new: a slot freed, a rate's window, more left.
        self.gated_dirty = True
        #: Set on a wake-up (a notification): a gated claim may find a new job, once
        #: GATED_WAKE_SPACING has passed since the last one.
        self.gated_woken = False
        self._gated_at = -math.inf
        #: Monotonic time at which a rate lets a held job start (None: nothing waits on a rate).
        self.gate_due: float | None = None
        #: The last gated claim passed over gates another worker held for a moment: a burst
        #: worker looks again (at gate_due) rather than taking it for the end of the work.
        self.gates_contended = False
        #: The last gated claim left jobs a rate would let through for want of idle children:
        #: the next one runs as soon as a child is free (a rate-held job holds no slot, so its
        #: outcome frees nothing that would set gated_dirty).
        self.rate_bound = False
        self._gate_cursors = ("", "")
        #: How many slots the last gated claim said this worker may hold (None: any number).
        self.gated_share: int | None = None
        #: The fleet may have changed (a control message): the next gated claim runs even with
        #: no room, to bring gated_share up to date before more slots are handed over.
        self.share_stale = False
        self._crowded_until = -math.inf
        #: Set by the loop while it shuts down: no slot is handed to a job it would only hand back.
        self.stopping_now = False
        self._names: list[str] | None = None
        # (id, attempt) of jobs that ran but whose outcome couldn't be stored: never handed back.
        self._unwritable: set[tuple[int, int]] = set()
        #: Ids of held jobs whose declaration is durable: only these may go to a child. An id
        #: leaves once its outcome is written.
        self.declared: set[int] = set()
        #: Of those, the jobs on their last attempt: at most one per child.
        self.declared_last: set[int] = set()
        #: Ids whose outcomes were written by a statement that didn't declare again (a flush, a
        #: round trip with nothing new to declare): still in the row's declaration, so the next
        #: round trip declares, which drops them. Else a job claimed here again on its last attempt
        #: and never sent would be counted by rescue as started (and end dead).
        self._stale_declared: set[int] = set()
        #: How many buffered jobs (not on their last attempt) to keep declared ahead (the pool sets it).
        self.declare_ahead = 1
        #: An idle child waits for a buffered job to be declared: a round trip is due now.
        self.declare_due = False
        #: The worker's row was gone when a round trip declared: no declaring until it is back.
        self.row_gone = False
        #: The last claim found fewer ready jobs than it asked for (see loop.DRY_FOR).
        self.claimed_short = False

    @classmethod
    def inline(cls, *, using: str, worker_id: str, clock: Callable[[], datetime] = timezone.now) -> Ledger:
        """A ledger with no children, for jobs run in this process (django_jobs.testing)."""
        return cls(context=ServiceContext(using, worker_id, clock), queues=[],
                   link=DatabaseLink(using, worker_id), children=())

    # -- what the worker holds -------------------------------------------------------------------

    def _held_rows(self) -> Iterator[dict[str, Any]]:
        """The claimed rows of the jobs this worker holds: claimed, sent to a child, or with an
        outcome not yet written."""
        yield from self.buffer
        for slot in self.children:
            yield from slot.jobs
        for outcome in self.pending:
            yield outcome.slot_job

    def held_ids(self) -> list[int]:
        """Ids of the jobs this worker holds (main thread only; the heartbeat reads what
        publish_held() stored)."""
        return [row["id"] for row in self._held_rows()]

    def gated_held(self) -> int:
        """How many held jobs hold a slot of a limit (see holds_slot)."""
        return sum(1 for row in self._held_rows() if holds_slot(row))

    def _held_attempts(self) -> set[tuple[int, int]]:
        """(id, attempt) of every job held (see held_ids)."""
        return {(row["id"], row["attempt"]) for row in self._held_rows()}

    def publish_held(self) -> None:
        """Publish the held ids for the heartbeat, after a statement changed them.

        Only a claim adds to them and only an outcome write removes from them (between those a
        job just moves from buffer to child to pending outcome), and both happen here in the main
        thread, so the list the heartbeat writes is never missing a job its worker holds.
        """
        self.held = (tuple(self.held_ids()), self.clock())

    # -- outcomes of jobs no child runs ------------------------------------------------------------

    def queue(
        self, row: dict[str, Any], reply: dict[str, Any], duration: float, started_at: datetime | None = None
    ) -> None:
        """Queue the outcome of a job that isn't in a child (buffered, or run in this process)."""
        finished_at = self.clock()
        self.pending.append(Outcome(row, reply, duration, started_at or finished_at, finished_at))

    def hand_back_buffer(self) -> None:
        """Give every buffered job back to the queue, unstarted (shutdown)."""
        while self.buffer:
            self.queue(self.buffer.popleft(), {"outcome": "handed_back"}, 0.0)

    def stop_buffered(self, ids: set[int]) -> None:
        """End the buffered jobs someone asked to stop: stopped, without running."""
        for row in [r for r in self.buffer if r["id"] in ids]:
            self.buffer.remove(row)
            self.queue(row, {"outcome": "stopped", "reason": "stopped before it started"}, 0.0)

    def outcomes_due(self, stopping: bool, children_busy: bool) -> bool:
        """Whether pending outcomes should be written now rather than with the next claim.

        Outcomes ride along with claims; on their own they are written once there are many,
        once the oldest has waited OUTCOME_DELAY, or when nothing else is going on.
        """
        if self.declare_due and not stopping:
            return True
        if not self.pending:
            return False
        if len(self.pending) >= 100 or stopping:
            return True
        gated = self._first_gated_outcome()
        if gated is not None and (not children_busy or time.monotonic() - gated >= GATED_OUTCOME_DELAY):
            return True  # it holds a slot of a limit (or a sequence) that other jobs wait for
        if not self.buffer and not children_busy:
            return True
        return time.monotonic() - self.pending[0].queued_at >= OUTCOME_DELAY

    def next_write(self) -> float | None:
        """The monotonic time by which the oldest pending outcome is due to be written."""
        if self.declare_due:
            return time.monotonic()
        if not self.pending:
            return None
        gated = self._first_gated_outcome()
        due = self.pending[0].queued_at + OUTCOME_DELAY
        return due if gated is None else min(due, gated + GATED_OUTCOME_DELAY)

    def _first_gated_outcome(self) -> float | None:
        """When the oldest pending outcome of a gated job was queued (None: there is none)."""
        if self._gated:
            for outcome in self.pending:
                if outcome.slot_job.get("gated"):
                    return outcome.queued_at
        return None

    # -- round trips ----------------------------------------------------------------------------

    def forget_pauses(self) -> None:
        """Read the paused queues and jobs again before the next claim (one was just changed),
        and this worker's share of limited slots (a worker may have joined)."""
        self._paused = (-math.inf, [], [])
        self.share_stale = True

    def refresh_pauses(self) -> None:
        """Read the pauses and limits again if they are PAUSES_FRESH old (the loop calls this
        before it waits); on a database outage leave them for the next claim."""
        if self.link.is_down() or time.monotonic() - self._paused[0] < PAUSES_FRESH:
            return
        try:
            self._read_pauses()
        except DB_DOWN as exc:
            self.link.lost(exc)

    def _paused_lists(self) -> tuple[list[str], list[str]]:
        """The queues and names the plain claim leaves alone: paused, or limited (the gated
        claim takes those)."""
        if time.monotonic() - self._paused[0] >= PAUSES_STALE:
            self._read_pauses()
        _, queues, names = self._paused
        return queues + self.limits.limited_queues, names + self.limits.limited_names

    def _read_pauses(self) -> None:
        with self.link.call():
            queues, names = claims.paused(self.using)
            limits = gates.limits_in_effect(self.using)
            unparked = claims.unpark(self.using, self.names)
        for name, count in unparked.items():
            log_event("unparked", name=name, jobs=count, worker=self.worker_id)
        if limits != self.limits:
            log_event("limits_changed", worker=self.worker_id,
                      queues=",".join(limits.limited_queues) or "-", names=",".join(limits.limited_names) or "-")
        self.limits = limits
        self._gated = gates.any_gated(self.limits)
        self.gated_dirty = True
        self._paused = (time.monotonic(), queues, names)

    def sync(self, limit: int) -> int:
        """Write pending outcomes and claim up to ``limit`` jobs in one round trip; return the
        number claimed (they go to the buffer) or set aside (unknown names: see claims._PARK), so
        that a claim that met only jobs it can't run is followed by another at once."""
        self.claimed_short = False  # (a claim that didn't run found nothing either way)
        if self.link.is_down() or not self.reconcile():
            return 0
        batch = self.pending[:500]
        writes = [self._outcome_write(o) for o in batch]
        try:
            paused_queues, paused_names = self._paused_lists() if limit > 0 else ([], [])
            covered = time.time()  # read before the claim's clock: never later than its "now"
            now = self.clock()
            # (The true pauses: the lists above also name the limited queues and jobs.)
            handoffs = self._handoffs(batch, self._paused[1], self._paused[2]) if self._gated else []
            declare, adding = self._declaration({o.slot_job["id"] for o in batch}, limit, bool(handoffs))
            with self.link.call():
                synced = claims.sync(
                    self.using,
                    worker_id=self.worker_id,
                    outcomes=writes,
                    limit=limit,
                    names=self.names,
                    now=now,
                    queues=self.queues,
                    paused_queues=paused_queues,
                    paused_names=paused_names,
                    handoffs=handoffs,
                    declare=declare,
                    # Without the workflow steps when none of these jobs had any downstream at its
                    # claim (a row without the claim's columns counts as having some).
                    downstream=any(o.slot_job.get("downstream", True) for o in batch),
                )
        except DB_DOWN as exc:
            self._reply_lost(batch, exc)
            return 0
        except Exception as exc:  # noqa: BLE001 - the database or the driver refused the batch
            # Something in the batch can't be stored (it should have been caught earlier): write
            # the outcomes one by one so one bad row can't sink the others. Nothing was claimed.
            log_event("outcome_batch_refused", logging.ERROR, worker=self.worker_id,
                      error=f"{type(exc).__name__}: {exc}"[:200])
            self._write_one_by_one(batch)
            return 0
        written, rows = synced.written, synced.claimed
        if synced.released:
            self.released += len(synced.released)
            self.gated_dirty = True  # a job just queued may be one flow control holds
        del self.pending[: len(batch)]
        self._forget_declared(batch, declared_again=declare is not None and synced.fresh is not None)
        if synced.parked:
            self._parked(synced.parked)
        passed = {h.job_id for h in handoffs} if sum(1 for r in rows if r.get("gated")) == len(handoffs) else set()
        if self._gated and any(o.slot_job.get("gated") and o.slot_job["id"] not in passed for o in batch):
            # A slot freed and not passed on (or not every one was): a held job may start.
            self.gated_dirty = True
        if limit > 0:
            self.claim_covered = covered
            # (The handed-over jobs among the rows aren't the claim's; the rows it set aside are.)
            self.claimed_short = sum(1 for r in rows if not r.get("gated")) + len(synced.parked) < limit
        self.claimed_total += len(rows)
        if handoffs:  # a handed-over job goes first (it holds its slot from its claim on)
            handed = [r for r in rows if r.get("gated")]
            self.buffer.extendleft(reversed(handed))
            self.buffer.extend(r for r in rows if not r.get("gated"))
        else:
            self.buffer.extend(rows)
        self._declared_now(declare, adding, synced.fresh)
        self.publish_held()
        self.link.ok()
        self._announce(batch, written)
        return len(rows) + len(synced.parked)

    @property
    def names(self) -> list[str]:
        """The job names registered in this worker's code: the only jobs it claims."""
        if self._names is None:
            self._names = registry.names()
        return self._names

    def _parked(self, parked: list[tuple[int, str]]) -> None:
        """The claim set aside jobs of names this worker doesn't know (see claims._PARK): set aside
        the rest of those names' ready jobs too, say so once per name, and wake the workers that
        may know them."""
        counts: dict[str, int] = {}
        for _, name in parked:
            counts[name] = counts.get(name, 0) + 1
        try:
            with self.link.call():
                for name, more in claims.park_all(self.using, sorted(counts), self.clock()).items():
                    counts[name] += more
                channel.notify(CONTROL_PARKED, self.using, control=True)
        except DB_DOWN as exc:
            self.link.lost(exc)
        for name, count in sorted(counts.items()):
            log_event("parked", logging.WARNING, name=name, jobs=count, worker=self.worker_id,
                      note="no job of this name is registered in this worker; left queued for a worker that has it")

    # -- declaring what may start (Worker.may_start) ---------------------------------------------------

    def _declaration(
        self, ending: set[int], limit: int, handoffs: bool = False
    ) -> tuple[claims.Declaration | None, list[int]]:
        """What the next round trip declares, and which buffered ids it adds (None: nothing new
        to declare, the row stays as it is). ``ending``: ids whose outcome the trip writes.

        The declaration names every held job that may be in a child or have been (everything
        declared before, but the jobs whose outcomes this trip writes), plus buffered jobs up to
        ``declare_ahead`` ahead and jobs on their last attempt while fewer than one per child are
        declared, plus the first fresh claims up to ``declare_ahead``.
        """
        if not self.children or self.row_gone:
            # Jobs run in this process (inline): nothing goes to a child. Or no row to declare in
            # until the loop writes it again (see _row_gone).
            return None, []
        declared = self.declared
        room_last = len(self.children) - len(self.declared_last - ending)
        ahead = 0
        adding: list[int] = []
        for row in self.buffer:
            job_id = row["id"]
            if last_attempt(row):
                if job_id not in declared and room_last > 0:
                    adding.append(job_id)
                    room_last -= 1
            elif job_id in declared:
                ahead += 1
            elif ahead < self.declare_ahead:
                adding.append(job_id)
                ahead += 1
        fresh = max(0, self.declare_ahead - ahead) if limit > 0 else 0
        if not adding and not fresh and not handoffs and not (limit > 0 and self._stale_declared):
            return None, []
        return claims.Declaration(sorted((declared - ending).union(adding)), fresh), adding

    def _declared_now(self, declare: claims.Declaration | None, adding: list[int], fresh: set[int] | None) -> None:
        """Record what the round trip just declared, once its claimed jobs are in the buffer
        (``fresh``: the claimed ids it named; None: the worker's row is gone, see below)."""
        self.declare_due = False
        if declare is None:
            return
        if fresh is None:
            self._row_gone()
            return
        declared = self.declared
        declared.update(adding)
        for row in self.buffer:
            job_id = row["id"]
            if job_id in fresh:
                declared.add(job_id)
            if job_id in declared and last_attempt(row):
                self.declared_last.add(job_id)
        self._declared_first()

    def _row_gone(self) -> None:
        """The worker's row is gone (or its heartbeat wrote it again, without a declaration): a
        rescuer took this worker for dead, gave back every job it hadn't declared (they may be
        running elsewhere by now) and deleted the row, in one transaction. Start none of them:
        give them back (a write the fence drops for those already given back), and have the row
        written again (``row_gone``) before declaring more. The declared ones rescue counted as
        lost: they may still start here, once at most."""
        self.row_gone = True
        undeclared = [row for row in self.buffer if row["id"] not in self.declared]
        for row in undeclared:
            self.buffer.remove(row)
            self.queue(row, {"outcome": "handed_back"}, 0.0)
        log_event("worker_row_gone", logging.WARNING, worker=self.worker_id, given_back=len(undeclared),
                  note="taken for dead: the jobs it had not declared are given back, not started")

    def _declared_first(self) -> None:
        """Put the buffer's declared jobs first, in their order (the pool sends from the head)."""
        declared = self.declared
        if all(row["id"] in declared for row in self.buffer):
            return
        ready = [row for row in self.buffer if row["id"] in declared]
        waiting = [row for row in self.buffer if row["id"] not in declared]
        self.buffer.clear()
        self.buffer.extend(ready)
        self.buffer.extend(waiting)

    def _forget_declared(self, outcomes: list[Outcome], declared_again: bool = False) -> None:
        """Outcomes were written (or fenced): their jobs are no longer this worker's to declare.
        ``declared_again``: the same statement wrote a new declaration, without them."""
        if declared_again:
            self._stale_declared.clear()
        for outcome in outcomes:
            job_id = outcome.slot_job["id"]
            if job_id in self.declared and not declared_again:
                self._stale_declared.add(job_id)
            self.declared.discard(job_id)
            self.declared_last.discard(job_id)

    def lost_before(self, job_id: int) -> int:
        """How many times a job was lost before (its history), for MAX_LOST; 0 while the database
        is unreachable (the child that died is then counted as a plain lost attempt)."""
        if self.link.is_down():
            return 0
        try:
            with self.link.call():
                return claims.lost_before(self.using, job_id)
        except DB_DOWN as exc:
            self.link.lost(exc)
            return 0

    def may_declare(self, row: dict[str, Any]) -> bool:
        """Whether the next round trip could declare this buffered job (see _declaration)."""
        if self.row_gone:
            return False
        if not last_attempt(row):
            return True
        pending = {o.slot_job["id"] for o in self.pending}
        return len(self.declared_last - pending) < len(self.children)

    def _handoffs(
        self, batch: list[Outcome], paused_queues: list[str], paused_names: list[str]
    ) -> list[claims.Handoff]:
        """The outcomes of the batch whose slot may pass to the next job of their key (see
        claims._HANDOFF), under the limits in effect now: a job whose name or queue was since
        paused or limited some other way frees its slot the ordinary way. So does one that would
        keep more slots here than this worker's fair share: that slot goes to whoever claims it."""
        handoffs: list[claims.Handoff] = []
        if not any(o.slot_job.get("handoff") for o in batch):
            return handoffs
        if self.gated_share is None:
            room = len(batch)
        else:  # the slots held once the batch's are freed, against the share
            room = self.gated_share - self.gated_held() + sum(1 for o in batch if holds_slot(o.slot_job))
        for outcome in batch:
            row = outcome.slot_job
            key = row.get("handoff")
            if key is None or self.stopping_now or len(handoffs) >= room:
                continue
            name, queue = row["name"], row["queue"]
            limit = self.limits.concurrency.get(name)
            if (
                limit is None or name in paused_names or queue in paused_queues or name in self.limits.rate
                or queue in self.limits.queue_concurrency or queue in self.limits.queue_rate
                or (self.queues and queue not in self.queues)
            ):
                continue
            handoffs.append(claims.Handoff(row["id"], key, name, queue, limit))
        return handoffs

    def claim_gated(self, want: int, free: int | None = None) -> int:
        """Claim up to ``want`` jobs that flow control may hold (db/gates.py); of them, jobs held
        by a rate only for the ``free`` idle children (None: ``want``), so that their starts are
        when they were counted. They go first in the buffer, since each holds a slot of its limit
        from its claim on.

        Runs only when something may have changed since the last one: a slot freed, a
        notification, a rate window opening, or the last one filling every free child.
        """
        if not self._gated:  # (no limits left: what an earlier gated claim saw is moot)
            self.gates_contended, self.gate_due = False, None
        if want <= 0 and not (self.share_stale and self.gated_share is not None):
            if self.gate_due is not None and time.monotonic() >= self.gate_due:
                # No room for what it was due for: look once there is room (a reply makes some),
                # not at a deadline already past, which would wake the loop at once, every turn.
                self.gate_due, self.gated_dirty = None, True
            return 0
        if not self._gated or self.link.is_down() or not self.reconcile():
            return 0
        now = time.monotonic()
        woken = self.gated_woken and now - self._gated_at >= GATED_WAKE_SPACING
        child_free = self.rate_bound and (free is None or free > 0)
        if not (
            self.gated_dirty or self.share_stale or woken or child_free
            or (self.gate_due is not None and now >= self.gate_due)
        ):
            if self.gated_woken:  # woken too soon after the last one: then, not at the next poll
                spaced = self._gated_at + GATED_WAKE_SPACING
                self.gate_due = spaced if self.gate_due is None else min(self.gate_due, spaced)
            return 0
        self.gated_dirty = self.gated_woken = self.share_stale = False
        self._gated_at = now
        self.gate_due = None
        want = max(want, 0)
        paused_queues, paused_names = self._paused[1], self._paused[2]
        try:
            with self.link.call():
                claim = gates.claim_gated(
                    self.using, worker_id=self.worker_id, want=want, rate_want=free, now=self.clock(),
                    limits=self.limits,
                    queues=self.queues, paused_queues=paused_queues, paused_names=paused_names,
                    key_cursor=self._gate_cursors[0], sequence_cursor=self._gate_cursors[1],
                    children=len(self.children) or None, held=self.gated_held(),
                    # The jobs for the idle children are declared by the claim itself, so they go
                    # out at once (no job runs here without children: nothing to declare then).
                    declare=0 if not self.children or self.row_gone else want if free is None else free,
                )
        except DB_DOWN as exc:
            self._reply_lost([], exc)
            self.gated_dirty = True
            return 0
        self._gate_cursors = (claim.key_cursor, claim.sequence_cursor)
        # (Another worker claiming what the gates let through counts as holding a gate: look
        # again soon, and a burst worker doesn't take it for the end of the work.)
        self.gates_contended = claim.contended or claim.lost > 0
        self.rate_bound = claim.rate_bound
        if claim.share is not None:
            if claim.share != self.gated_share:
                self._crowded_until = time.monotonic() + GATED_CROWDED_FOR
            self.gated_share = claim.share
        if claim.next_start is not None:
            wait = (claim.next_start - self.clock()).total_seconds()
            self.gate_due = time.monotonic() + max(wait, 0.0) + 0.001
        if self.gates_contended:  # another worker held some gates for a moment: look again soon
            soon = time.monotonic() + 0.005
            self.gate_due = soon if self.gate_due is None else min(self.gate_due, soon)
        if claim.crowded and time.monotonic() < self._crowded_until:
            crowded = time.monotonic() + GATED_CROWDED_POLL
            self.gate_due = crowded if self.gate_due is None else min(self.gate_due, crowded)
        rows = claim.rows
        if len(rows) == want or claim.key_cursor or claim.sequence_cursor:
            self.gated_dirty = True  # there may be more: look again next time round
        self.claimed_total += len(rows)
        self.buffer.extendleft(reversed(rows))
        declared = [row["id"] for row in rows if row.pop("declared")]
        if declared:
            self.declared.update(declared)
            self._declared_first()
        self.publish_held()
        self.link.ok()
        return len(rows)

    def gated_in_buffer(self) -> int:
        """How many buffered jobs came from the gated claim (each waits for a free child)."""
        return sum(1 for row in self.buffer if row.get("gated"))

    def flush(self, final: bool = False) -> None:
        """Write pending outcomes; on a database outage keep them and try again later.

        Outcomes are batched: everything collected since the last flush goes in one UPDATE and one
        commit. A crash before the flush loses no job: it is still ``running`` in the table and
        rescue runs it again (the at-least-once window, see docs/explanation/guarantees.md).
        """
        if not self.pending or (not final and self.link.is_down()):
            return
        for _ in range(5 if final else 1):
            if not self.reconcile():
                if final:
                    time.sleep(min(self.link.backoff, 2.0))
                continue
            batch = self.pending[:500]
            try:
                with self.link.call():
                    written = claims.record_outcomes(
                        self.using, self.worker_id, [self._outcome_write(o) for o in batch]
                    )
            except DB_DOWN as exc:
                self._reply_lost(batch, exc)
                if final:
                    time.sleep(min(self.link.backoff, 2.0))
                continue
            except Exception as exc:  # noqa: BLE001 - the database or the driver refused the batch
                log_event("outcome_batch_refused", logging.ERROR, worker=self.worker_id,
                          error=f"{type(exc).__name__}: {exc}"[:200])
                self._write_one_by_one(batch)
            else:
                del self.pending[: len(batch)]
                self._forget_declared(batch)
                self.publish_held()
                self.link.ok()
                self._announce(batch, written)
                if any(o.slot_job.get("gated") for o in batch):
                    self.gated_dirty = True
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
                with self.link.call():
                    try:
                        written = claims.record_outcomes(self.using, self.worker_id, [self._outcome_write(outcome)])
                    except DB_DOWN:
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
            except DB_DOWN as exc:
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
            if (outcome.slot_job["id"], outcome.slot_job["attempt"]) not in self._unwritable:
                self._forget_declared([outcome])
            else:  # it ran: it stays declared, but no longer takes a child's turn (see _declaration)
                self.declared_last.discard(outcome.slot_job["id"])
            self.publish_held()
            self._announce([outcome], written)

    def _announce(self, batch: list[Outcome], written: dict[int, str]) -> None:
        listening = job_finished.has_listeners(Job)
        finished: list[dict[str, Any]] = []
        unsure = [(o.slot_job["id"], o.slot_job["attempt"]) for o in batch
                  if o.unsure and o.slot_job["id"] not in written]
        unconfirmed: set[int] = set()
        if unsure:
            # Written by the statement whose reply was lost? Then the fence refused the second write.
            try:
                with self.link.call():
                    written = {**written, **claims.outcomes_written(self.using, self.worker_id, unsure)}
            except DB_DOWN as exc:
                self.link.lost(exc)
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
                finished.append({
                    "job_id": row["id"], "name": row["name"], "attempt": row["attempt"],
                    "worker_id": self.worker_id, "status": status,
                    "outcome": lifecycle.announced_outcome(outcome.reply["outcome"], status),
                    "duration": outcome.duration, "error": outcome.reply.get("error"),
                })
        if finished:
            send_signals(job_finished, finished)

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
            attempts_at_retry=row.get("attempts_at_retry") or 0,
        )
        ended = lifecycle.Ended.from_reply(outcome.reply)
        backoff = None
        if ended.happened in lifecycle.MAY_RETRY:  # (a Backoff is built per call: only when needed)
            definition = registry.get(row["name"])
            backoff = definition.effective_backoff if definition is not None else None
        max_lost = (jobs_settings.MAX_LOST or 0) if ended.happened is lifecycle.Happened.LOST else 0
        return claims.OutcomeWrite(
            row["id"], row["attempt"], outcome.finished_at,
            lifecycle.decide(attempt, ended, outcome.finished_at, backoff, max_lost=max_lost),
        )

    # -- lost replies ---------------------------------------------------------------------------

    def _reply_lost(self, batch: list[Outcome], exc: BaseException) -> None:
        """A statement failed with the connection: it may still have committed (the reply is what
        got lost), so its outcomes may be written and its claim may hold rows we never saw."""
        for outcome in batch:
            outcome.unsure = True
        self.link.lost(exc)

    def reconcile(self) -> bool:
        """After a lost reply, give back the rows claimed for this worker that it never received.

        Only this worker claims rows under its id, and it holds every row it received until the
        outcome is written, so a running row of its own that it doesn't hold came from a claim
        whose reply was lost: it never started, and goes back without spending an attempt.
        Returns False while the database is unreachable.
        """
        if not self.link.unsure:
            return True
        try:
            with self.link.call():
                now = self.clock()
                rows = claims.unheld(self.using, self.worker_id, self._held_attempts() | self._unwritable)
                written = claims.record_outcomes(self.using, self.worker_id, [
                    claims.OutcomeWrite(job_id, attempt, now, lifecycle.never_received(
                        lifecycle.Attempt(job_id=job_id, name=name, attempt=attempt, max_attempts=max_attempts,
                                          worker_id=self.worker_id, started_at=now, duration=0.0), now))
                    for job_id, name, attempt, max_attempts in rows
                ])
                ids = list(written)
        except DB_DOWN as exc:
            self.link.lost(exc)
            return False
        self.link.unsure = False
        if ids:
            log_event("claim_reply_lost", logging.WARNING, worker=self.worker_id, jobs=len(ids),
                      note="claimed by a statement whose reply never arrived; handed back unstarted")
        return True

