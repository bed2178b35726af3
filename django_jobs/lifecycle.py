"""What an ended attempt does to its job: one pure decision, no database.

The worker turns whatever ended an attempt (the child's reply, a timeout, a crash, a hand-back
at shutdown, a stop before the start) into an ``Ended`` and asks ``decide()`` for the
``Transition``: the next status, ``run_at``, the history entry and the other fields to write. The
SQL that writes it only applies the decision, fenced by the claim. docs/explanation/lifecycle.md
lists every transition; tests/unit/test_lifecycle.py has one row per transition.
"""

from __future__ import annotations

import enum
import traceback
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.utils.dateparse import parse_datetime

from .models import JobStatus
from .retry import Backoff
from .text import storable

#: The longest ``last_error`` stored: the first line of the error, cut here.
LAST_ERROR_CHARS = 1000
#: ``last_error`` of a job that ended because someone asked it to stop.
STOPPED_ON_REQUEST = "stopped on request"
#: Why a lost attempt of a job with ``max_attempts=1`` ends its job (history ``reason``).
AT_MOST_ONCE = (
    "max_attempts=1 (at most once): this attempt may have started before it was lost, so the job is "
    "not run again"
)
#: Why rescue gave back a job its lost worker had claimed but provably never started.
NEVER_STARTED = (
    "claimed ahead by a worker that was lost before it declared the job might start: it never "
    "started, so no attempt is spent"
)
#: The retry policy of a rescued attempt: its job is due again at once (the wait was the rescue).
AT_ONCE = Backoff(base=0, factor=1, max_delay=0, jitter=0)


class Happened(enum.StrEnum):
    """How an attempt ended; the value is the ``outcome`` of its history entry."""

    # The function returned; the result is stored.
    SUCCEEDED = "succeeded"
    # The function raised: retried while attempts are left and the error is retryable.
    FAILED = "failed"
    # The attempt ran past its timeout and its child was killed.
    TIMEOUT = "timeout"
    # The child died, or the worker did (rescue records these in SQL, same shape).
    LOST = "lost"
    # The job raised Retry: queued again, the attempt given back.
    RETRY = "retry"
    # The job raised StopJob, or was stopped on request.
    STOPPED = "stopped"
    # The worker gave the job back unstarted or unfinished at shutdown, or the job returned after
    # stop_requested told it the worker was shutting down: no attempt spent.
    HANDED_BACK = "handed_back"
    # No job of its name is registered where it was claimed: it can't run there. (Stored as
    # "dead", what history entries have always said for it.)
    UNREGISTERED = "dead"


#: The kinds decide() retries, with the job's backoff, while attempts are left.
MAY_RETRY = frozenset({Happened.FAILED, Happened.TIMEOUT, Happened.LOST})
#: Reading a reply's outcome: a dict lookup, cheaper per job than Happened(value).
_HAPPENED = {h.value: h for h in Happened}


@dataclass(frozen=True)
class ErrorRecord:
    """An error as stored in history: class path, message and traceback, always storable."""

    class_path: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorRecord:
        """The record of an exception a job raised."""
        kind = type(exc)
        try:
            message = str(exc)
        except Exception:  # noqa: BLE001 - a broken __str__ must not hide the failure
            message = f"<{kind.__name__}: str() failed>"
        return cls(f"{kind.__module__}.{kind.__qualname__}", storable(message),
                   storable("".join(traceback.format_exception(exc))))

    @classmethod
    def ours(cls, name: str, message: str) -> ErrorRecord:
        """A failure django-jobs records itself (``WorkerLost``, ``JobTimeout``, …)."""
        return cls(f"django_jobs.exceptions.{name}", storable(message))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorRecord:
        return cls(storable(str(data.get("class", ""))), storable(str(data.get("message", ""))),
                   storable(str(data.get("traceback", ""))))

    def as_dict(self) -> dict[str, str]:
        """The stored form (history entries, the ``job_finished`` signal)."""
        return {"class": self.class_path, "message": self.message, "traceback": self.traceback}

    @property
    def summary(self) -> str:
        """``ClassName: first line of the message``, as ``last_error`` holds it."""
        text = f"{self.class_path.rsplit('.', 1)[-1]}: {self.message}".strip()
        return text.splitlines()[0][:LAST_ERROR_CHARS] if text else self.class_path


# Built per job on the worker's hot path: slots, not frozen (a frozen dataclass's __init__ costs
# a microsecond more per object). Treat them as values all the same.
@dataclass(slots=True)
class Ended:
    """What ended an attempt. Build it with the class methods; ``from_reply`` reads a child's."""

    happened: Happened
    result: Any = None
    error: ErrorRecord | None = None
    retryable: bool = True
    retry_at: datetime | None = None
    retry_in: float = 0.0
    reason: str = ""
    #: How many times the job was lost before this attempt (``lost`` entries in its history).
    lost_before: int = 0
    #: Why a success's result wasn't stored (a value JSON can't hold); empty when it was.
    unstorable: str = ""

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> Ended:
        """Read the JSON a child (or the worker, for an attempt that never answered) sent."""
        happened = _HAPPENED.get(reply["outcome"])
        if happened is Happened.SUCCEEDED:  # most replies: skip the rest
            return cls(happened, result=reply.get("result"), unstorable=reply.get("unstorable") or "")
        if happened is None:
            raise ValueError(f"a reply with an unknown outcome: {reply['outcome']!r}")
        error = reply.get("error")
        at = reply.get("at")
        return cls(
            happened,
            result=reply.get("result"),
            error=ErrorRecord.from_dict(error) if error else None,
            retryable=bool(reply.get("retryable", True)),
            retry_at=parse_datetime(at) if at else None,
            retry_in=float(reply.get("delay", 0.0)),
            reason=str(reply.get("reason") or ""),
            lost_before=int(reply.get("lost_before", 0)),
        )

    @classmethod
    def failure(cls, happened: Happened, error_class: str, message: str, *, retryable: bool = True) -> Ended:
        """An attempt that ended without a reply of its own (timeout, lost, not storable)."""
        return cls(happened, error=ErrorRecord.ours(error_class, message), retryable=retryable)


@dataclass(slots=True)
class Attempt:
    """The job as its worker holds it when the attempt ends."""

    job_id: int
    name: str
    attempt: int
    max_attempts: int
    worker_id: str
    started_at: datetime
    duration: float
    #: ``attempts`` when an operator last retried the job: the backoff counts attempts after it.
    attempts_at_retry: int = 0


@dataclass(slots=True)
class Transition:
    """The fields an ended attempt writes (``None``: leave the column as it is)."""

    status: JobStatus
    history_entry: dict[str, Any]
    run_at: datetime | None = None
    set_result: bool = False
    result: Any = None
    last_error: str | None = None
    attempts_delta: int = 0
    max_attempts_delta: int = 0


def decide(
    attempt: Attempt, ended: Ended, now: datetime, backoff: Backoff | None, *, max_lost: int = 0
) -> Transition:
    """Decide what ``ended`` does to the job of ``attempt`` at ``now``.

    ``backoff`` is the job's retry policy, or None when the job isn't registered (then nothing is
    retried). A job lost for the ``max_lost``-th time (``MAX_LOST``; 0: no limit) ends ``dead``
    whatever its attempts: it looks like a poison pill that kills the process running it. A stop
    request made meanwhile overrides the decision in the write itself, so that a request landing
    while the outcome is written still wins (see db.claims.OUTCOME_UPDATE).
    """
    entry: dict[str, Any] = {
        "attempt": attempt.attempt,
        "worker": attempt.worker_id,
        "started_at": attempt.started_at.isoformat(),
        "finished_at": now.isoformat(),
        "duration": round(attempt.duration, 6),
        "outcome": ended.happened.value,
    }
    happened = ended.happened
    if happened is Happened.SUCCEEDED:
        if ended.unstorable:  # the value returned couldn't be stored: never a reason to run it again
            entry["result_unstorable"] = True
            entry["warning"] = storable(ended.unstorable)
        return Transition(JobStatus.SUCCEEDED, entry, set_result=True, result=ended.result, last_error="")
    if happened is Happened.RETRY:
        run_at = ended.retry_at or now + timedelta(seconds=ended.retry_in)
        entry["run_at"] = run_at.isoformat()
        # Rescheduling isn't a failure: the attempt it used is given back.
        return Transition(JobStatus.QUEUED, entry, run_at=run_at, max_attempts_delta=1)
    if happened is Happened.STOPPED:
        entry["reason"] = storable(ended.reason)
        return Transition(JobStatus.STOPPED, entry, last_error=storable(ended.reason or "stopped by the job"))
    if happened is Happened.HANDED_BACK:
        if ended.reason:
            entry["reason"] = storable(ended.reason)
        return Transition(JobStatus.QUEUED, entry, run_at=now, attempts_delta=-1)
    if happened is Happened.UNREGISTERED:
        entry["error"] = ended.error.as_dict() if ended.error else None
        return Transition(JobStatus.DEAD, entry, last_error=ended.error.summary if ended.error else "")
    # failed, timeout, lost
    entry["error"] = ended.error.as_dict() if ended.error else None
    last_error = ended.error.summary if ended.error else happened.value
    if happened is Happened.LOST and max_lost and ended.lost_before + 1 >= max_lost:
        times = ended.lost_before + 1
        entry["reason"] = (f"lost {times} times (MAX_LOST={max_lost}): taken for a poison pill that "
                           f"kills the process running it, and not run again")
        return Transition(JobStatus.DEAD, entry, last_error=f"{last_error} (lost {times} times: poison pill)"[
            :LAST_ERROR_CHARS])
    if ended.retryable and attempt.attempt < attempt.max_attempts and backoff is not None:
        # Counted from the operator's last retry: it restarts the backoff with the fresh budget.
        run_at = now + timedelta(seconds=backoff.delay(attempt.attempt - attempt.attempts_at_retry))
        entry["retry_at"] = run_at.isoformat()
        return Transition(JobStatus.RETRYING, entry, run_at=run_at, last_error=last_error)
    if happened is Happened.LOST and attempt.max_attempts == 1:
        entry["reason"] = AT_MOST_ONCE
    return Transition(JobStatus.DEAD, entry, last_error=last_error)


def on_stop_request(transition: Transition) -> Transition:
    """What ``transition`` becomes for a job someone asked to stop: a stop request beats every
    other outcome, and the attempt counts as run (even a hand-back's).

    Outcome writes apply this in the statement itself, from ``stop_requested_at`` as the write
    finds it, so a request that lands while the outcome is written still wins
    (db.claims.OUTCOME_UPDATE spells it with these constants).
    """
    return replace(transition, status=JobStatus.STOPPED, last_error=STOPPED_ON_REQUEST, attempts_delta=0,
                   history_entry=stopped_entry(transition.history_entry))


def stopped_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The history entry of an attempt whose job someone asked to stop: its outcome is
    ``stopped`` like the job's status, and ``ended_as`` keeps what the attempt itself did
    (``succeeded`` for a job that returned). OUTCOME_UPDATE spells the same in SQL."""
    if entry.get("outcome") == Happened.STOPPED.value:
        return entry
    return {**entry, "outcome": Happened.STOPPED.value, "ended_as": entry.get("outcome"),
            "reason": STOPPED_ON_REQUEST}


def announced_outcome(outcome: str, status: str) -> str:
    """The outcome the ``job_finished`` signal (and so the log line) gives for an attempt the
    worker saw end as ``outcome`` and wrote as ``status``: a stop request that won is ``stopped``,
    as the history says (see stopped_entry)."""
    if status == JobStatus.STOPPED.value:
        return Happened.STOPPED.value
    return outcome


def rescue(
    attempt: Attempt, message: str, now: datetime, *, stop_requested: bool, rescuer: str,
    lost_before: int = 0, max_lost: int = 0,
) -> Transition:
    """Decide what happens to the job of an attempt whose worker was lost (``message`` says how)
    while the attempt may have started.

    The attempt counts as failed with ``WorkerLost``: the job is due again at once while attempts
    are left, ends ``dead`` when they are spent or when it was lost ``max_lost`` times (see
    decide()), and ``stopped`` when someone had asked it to stop.
    """
    ended = Ended.failure(Happened.LOST, "WorkerLost", message)
    ended.lost_before = lost_before
    decided = decide(attempt, ended, now, AT_ONCE, max_lost=max_lost)
    decided.history_entry["rescued_by"] = rescuer
    return on_stop_request(decided) if stop_requested else decided


def never_received(
    attempt: Attempt, now: datetime,
    reason: str = "the claim reached the database but its reply never reached the worker",
) -> Transition:
    """Give back an attempt that never started (its worker never received it, or never declared
    it might start it: ``reason`` says which), so it spends no attempt."""
    handed_back = decide(attempt, Ended(Happened.HANDED_BACK), now, None)
    handed_back.history_entry["reason"] = reason
    return handed_back


def never_started(attempt: Attempt, now: datetime, *, rescuer: str, reason: str = NEVER_STARTED) -> Transition:
    """Give back an attempt a lost worker had claimed but never declared it might start (see
    Worker.may_start): it provably never started, so it spends no attempt and isn't lost."""
    handed_back = never_received(attempt, now, reason)
    handed_back.history_entry["rescued_by"] = rescuer
    return handed_back


def never_known(name: str, now: datetime, grace: float) -> Transition:
    """Decide the end of a job that waited, set aside, for a worker that registers its name, and
    that no live worker has known for ``grace`` seconds: dead with ``JobNotRegistered``. It never
    started, so no attempt is spent; retried once such a worker is deployed, it runs."""
    ended = Ended.failure(
        Happened.UNREGISTERED, "JobNotRegistered",
        f"no live worker has registered a job named {name!r} for {grace:g} s (UNKNOWN_JOB_GRACE). "
        f"Deploy workers whose code defines it, then retry this job.",
        retryable=False,
    )
    assert ended.error is not None
    entry: dict[str, Any] = {"finished_at": now.isoformat(), "outcome": ended.happened.value,
                             "error": ended.error.as_dict()}
    return Transition(JobStatus.DEAD, entry, last_error=ended.error.summary)


# -- workflows: where a job that waits on upstream jobs stands -------------------------------------

#: Upstream statuses that stop everything downstream (failed for good).
UPSTREAM_FAILED = frozenset({JobStatus.DEAD.value, JobStatus.STOPPED.value})


def upstream_failed(upstream_id: int, status: str) -> str:
    """The ``last_error`` of a job stopped because upstream job ``upstream_id`` ended ``status``.

    db.claims spells the same sentence in SQL for the cascade in the outcome write.
    """
    return f"upstream job #{upstream_id} ended {status}"


@dataclass(frozen=True)
class Armed:
    """Where a job with upstream jobs stands: waiting on ``pending`` of them, queued, or stopped
    because ``stopped_by`` failed for good."""

    status: JobStatus
    pending: int
    stopped_by: int | None = None
    reason: str = ""


def arm(upstream: dict[int, str]) -> Armed:
    """Decide where a job stands given its upstream jobs' statuses (id → status).

    At enqueue time and on a retry (re-arming): a failed upstream job stops it (the lowest such
    id is named); otherwise it waits on every upstream job that hasn't succeeded, or is queued
    when all have. An upstream job missing from ``upstream`` (pruned: it had finished and every
    job downstream of it too) counts as done.
    """
    pending = sum(1 for status in upstream.values() if status != JobStatus.SUCCEEDED.value)
    failed = sorted(job_id for job_id, status in upstream.items() if status in UPSTREAM_FAILED)
    if failed:
        first = failed[0]
        return Armed(JobStatus.STOPPED, pending, first, upstream_failed(first, upstream[first]))
    return Armed(JobStatus.WAITING if pending else JobStatus.QUEUED, pending)
