"""The NOTIFY channels: their names, the wake-up payload's format and parsing, and sending one.

Enqueues wake idle workers through CHANNEL (the INSERT in inserts.py spells the same payload in
SQL, with wakeup_sql()), and operators' verbs send control messages on it (models.CONTROL_*).
Outcomes announce finished jobs on DONE_CHANNEL to whoever waits for them (OutcomeWaiter).
"""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import Any

from django.db import connections

from ..conf import jobs_settings
from .connection import is_postgres

#: The one channel: wake-ups for every queue, and control messages.
CHANNEL = "django_jobs"

# A wake-up on CHANNEL reads "<queue> <due>": the queue, a space, then the epoch seconds at which
# the earliest job enqueued falls due, or 0 when it is due now. The queue may contain spaces, so
# the due time is always there and always after the LAST space. (Workers before this format read
# "<queue>" or "<queue> <due>" up to the FIRST space: the same for a queue without spaces.)
# Control messages ("!stop", "!pause", models.CONTROL_*) have no space.


def wakeup_payload(queue: str, due: float = 0.0) -> str:
    """The NOTIFY payload that wakes the workers of ``queue`` (for a job due at ``due``, epoch)."""
    return f"{queue} {due!r}" if due else f"{queue} 0"


def parse_wakeup(payload: str) -> tuple[str, float | None]:
    """The queue and future due time (epoch seconds, or None for "now") of a wake-up payload.

    Raises ValueError for a payload that isn't one. A payload without a space is a bare queue
    name, as workers before the due time was always sent wrote it.
    """
    queue, space, due = payload.rpartition(" ")
    if not space:
        return payload, None
    seconds = float(due)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"bad due time {due!r}")
    return queue, seconds or None


# Send one notification on the channel (transactional: it goes out when the caller commits).
NOTIFY = "SELECT pg_notify(%s, %s)"


def notify(queue: str, using: str | None = None, *, control: bool = False) -> None:
    """Wake idle workers serving ``queue`` (at commit, when inside a transaction).

    ``control=True`` sends ``queue`` as it is: a control message (models.CONTROL_*) for every worker.
    """
    using = using or jobs_settings.DATABASE
    if is_postgres(using):
        with connections[using].cursor() as cursor:
            cursor.execute(NOTIFY, [CHANNEL, queue if control else wakeup_payload(queue)])


def wakeup_sql(queue: str, due: str) -> str:
    """SQL sending the wake-up payload for the queue and due time these expressions give.

    Spelled like wakeup_payload(): the epoch seconds of a due time still to come, else 0.
    """
    return (
        f"pg_notify('{CHANNEL}', {queue} || ' ' || "
        f"CASE WHEN {due} > now() THEN extract(epoch FROM {due})::text ELSE '0' END)"
    )


#: Finished jobs, each announced by its id, for Job.wait(). Workers don't listen to it.
DONE_CHANNEL = "django_jobs_done"

# A NOTIFY per finished job would cost every outcome a commit-order lock that PostgreSQL takes for
# any transaction that notifies (held through the commit's flush), so outcomes notify only while
# someone waits. Waiters hold the waiters lock (shared) as long as they wait; an outcome finds it
# held when it can't take it exclusively for an instant. The outcomes lock closes the gap between
# that test and the outcome's commit: every outcome holds it (shared) until its commit, and a
# waiter takes it exclusively once, after its own lock and before its first look at the job, so it
# waits out the outcomes that tested before it came (it then sees them committed), while those
# testing after it see its lock (or its pending request) and notify.
_WAITERS_LOCK = "hashtextextended('django_jobs:waiters', 0)"
_OUTCOMES_LOCK = "hashtextextended('django_jobs:outcomes', 0)"
_ANYONE_WAITING = (
    f"CASE WHEN NOT pg_try_advisory_xact_lock_shared({_OUTCOMES_LOCK}) THEN true "
    f"WHEN pg_try_advisory_lock({_WAITERS_LOCK}) THEN NOT pg_advisory_unlock({_WAITERS_LOCK}) "
    f"ELSE true END"
)


def done_sql(job_id: str, finished: str) -> str:
    """SQL (text, else NULL) announcing job ``job_id`` on DONE_CHANNEL when the expression
    ``finished`` holds and someone waits for outcomes; the waiting test runs once a statement."""
    return (
        f"CASE WHEN {finished} AND (SELECT {_ANYONE_WAITING}) "
        f"THEN pg_notify('{DONE_CHANNEL}', ({job_id})::text)::text END"
    )


# What a waiter runs, in order, before its first look at a job (see _WAITERS_LOCK).
WAITER_START = (
    f"LISTEN {DONE_CHANNEL}",
    f"SELECT pg_advisory_lock_shared({_WAITERS_LOCK})",
    f"SELECT pg_advisory_lock({_OUTCOMES_LOCK})",
    f"SELECT pg_advisory_unlock({_OUTCOMES_LOCK})",
)
# A job's status (format with the job table's name).
JOB_STATUS = "SELECT status FROM {table} WHERE id = %s"


class OutcomeWaiter:
    """Looks up jobs' statuses and waits for finished jobs' announcements, or polls.

    On PostgreSQL with LISTEN_NOTIFY it holds its own connection (autocommit, so it sees what
    workers commit whatever the caller's transaction does), listening on DONE_CHANNEL; it is
    closed on exit, which ends the LISTEN and releases the waiters lock.
    """

    def __init__(self, using: str, table: str) -> None:
        self.using = using
        self.sql = JOB_STATUS.format(table=table)
        self.interval = float(jobs_settings.POLL_INTERVAL)
        self.conn: Any = None

    def __enter__(self) -> OutcomeWaiter:
        if is_postgres(self.using) and jobs_settings.LISTEN_NOTIFY:
            wrapper = connections[self.using]
            self.conn = wrapper.get_new_connection(wrapper.get_connection_params())
            try:
                self.conn.autocommit = True
                for statement in WAITER_START:
                    self.conn.execute(statement)
            except BaseException:
                self.conn.close()
                raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.conn is not None:
            self.conn.close()

    def status(self, job_id: int) -> str | None:
        """The job's status as committed (as the caller sees it without LISTEN), None if absent."""
        if self.conn is not None:
            row = self.conn.execute(self.sql, [job_id]).fetchone()
        else:
            with connections[self.using].cursor() as cursor:
                cursor.execute(self.sql, [job_id])
                row = cursor.fetchone()
        return None if row is None else str(row[0])

    def pause(self, job_id: int, seconds: float) -> None:
        """Return once job ``job_id`` is announced finished, or after ``seconds`` (at most the
        poll interval: outcomes written other than by a worker announce nothing)."""
        seconds = max(0.0, min(seconds, self.interval))
        if self.conn is None:
            time.sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        expected = str(job_id)
        while (left := deadline - time.monotonic()) > 0:
            for notify in self.conn.notifies(timeout=left, stop_after=1):
                if notify.payload == expected:
                    return
