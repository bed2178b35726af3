"""The NOTIFY channel: its name, the wake-up payload's format and parsing, and sending one.

Enqueues wake idle workers through it (the INSERT in inserts.py spells the same payload in SQL,
with wakeup_sql()), and operators' verbs send control messages on it (models.CONTROL_*).
"""

from __future__ import annotations

import math

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
