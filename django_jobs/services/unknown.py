"""Jobs nobody can run: end the jobs set aside for a name no live worker has known for a while.

A worker that claims a job its code doesn't register sets it aside, still queued (db/claims.py,
_PARK), and a worker that registers the name puts it back. During a rolling deploy that is the
gap between the new code enqueuing a new job and the first new worker starting. If no live worker
has known the name for UNKNOWN_JOB_GRACE (the job was misspelled, its code removed, a deploy
stopped half way), its jobs end dead with JobNotRegistered, so that an operator sees them and can
retry them once the code is there. Any worker may run this; the statement's WHERE and SKIP LOCKED
make two at once harmless.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .. import lifecycle
from ..conf import jobs_settings
from ..db import maintenance
from ..log import log_event
from ..stats import unknown_names

if TYPE_CHECKING:
    from . import ServiceContext

#: Seconds between sweeps (or a quarter of UNKNOWN_JOB_GRACE, when that is shorter).
EVERY = 30.0


def end_unknown(using: str, *, now: datetime) -> dict[str, int]:
    """End the set-aside jobs of names no live worker has known for UNKNOWN_JOB_GRACE; return
    how many of each name."""
    grace = float(jobs_settings.UNKNOWN_JOB_GRACE)
    ended: dict[str, int] = {}
    for unknown in unknown_names(using, now=now):
        due = unknown.ends_dead_at(grace)
        if due is None or due > now:
            continue
        transition = lifecycle.never_known(unknown.name, now, grace)
        cutoff = now - timedelta(seconds=grace)
        count = 0
        while done := maintenance.end_unknown(using, name=unknown.name, parked_before=cutoff,
                                              transition=transition, now=now):
            count += done
        if count:
            ended[unknown.name] = count
            log_event("unknown_jobs_dead", name=unknown.name, jobs=count, grace=f"{grace:g}s",
                      note="no live worker has registered this job name; retry them once one does")
    return ended


class UnknownSweeper:
    """The service every worker runs every EVERY seconds (a quarter of the grace if shorter)."""

    name = "unknown_names"

    def __init__(self, context: ServiceContext):
        self.context = context

    def run(self, now: datetime) -> float:
        end_unknown(self.context.using, now=now)
        return min(EVERY, max(0.1, float(jobs_settings.UNKNOWN_JOB_GRACE) / 4))
