"""Finished-job counters that only go up: what Prometheus needs for ``rate()`` and ``increase()``.

Counting the job table on each scrape would not do: pruning deletes old finished rows (the count
drops, and Prometheus reads a drop as a counter reset, i.e. a burst of jobs), and an operator's
retry turns a dead job back into a queued one. So a worker service tallies instead: every
``TALLY_INTERVAL`` seconds one worker (whichever gets there first) counts the jobs that finished
since the last tally, a range scan of ``django_jobs_finished_idx``, and adds them to
``FinishedCounter`` rows, which nothing ever lowers. Each finish is counted once: a job that
dies, is retried and dies again counts two deaths.

The tally stops ``SETTLE`` seconds short of now: an outcome is written a moment after the
worker's clock stamped its ``finished_at`` (and clocks of different hosts differ a little), so
the newest rows may not be visible yet. An outcome written later than that (say, held back by a
database outage longer than ``SETTLE``) is missed by the counters; the job table still has it.

The same service records the admin's charts (``Sample`` rows, db/series.py): once a minute, each
worker runs one statement that records the minutes ended ``SETTLE`` ago and not yet recorded, on
whichever worker gets there first.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F

from ..db import series
from ..db import stats as db_stats
from ..db.connection import is_postgres
from ..models import CounterMark, FinishedCounter
from .prune import chart_retention

if TYPE_CHECKING:
    from . import ServiceContext

MARK = "finished"
TALLY_INTERVAL = 15.0
SETTLE = timedelta(seconds=30)


def tally(using: str, *, now: datetime) -> int:
    """Add the jobs that finished since the last tally to the counters; return how many.

    The first tally only sets the mark: counting starts then. Safe when every worker calls it at
    once: the mark moves by a compare-and-set, so exactly one of them counts each window.
    """
    until = now - SETTLE
    with transaction.atomic(using=using):
        mark, created = CounterMark.objects.using(using).get_or_create(
            key=MARK, defaults={"counted_until": until}
        )
        since = mark.counted_until
        if created or until <= since:
            return 0
        # Compare-and-set: a concurrent tally blocks on this row and then finds the mark moved.
        moved = (
            CounterMark.objects.using(using)
            .filter(key=MARK, counted_until=since)
            .update(counted_until=until)
        )
        if not moved:
            return 0
        rows = db_stats.finished_between_by_name(using, since=since, until=until)
        counters = FinishedCounter.objects.using(using)
        for queue, name, status, count in rows:
            updated = counters.filter(queue=queue, name=name, status=status).update(
                count=F("count") + count
            )
            if not updated:
                counters.create(queue=queue, name=name, status=status, count=count)
        return sum(int(r[3]) for r in rows)


def counted_until(using: str) -> datetime | None:
    """Jobs that finished up to this moment are in the counters (None before the first tally)."""
    mark = CounterMark.objects.using(using).filter(key=MARK).first()
    return mark.counted_until if mark else None


def record_samples(using: str, *, now: datetime) -> series.Recorded:
    """Record the charts' minutes that ended ``SETTLE`` before ``now``: one statement.

    Safe when every worker calls it at once (each minute is recorded by exactly one of them). A
    worker back from an outage catches up 60 minutes per call, back to CHARTS_MINUTE_RETENTION.
    """
    return series.record(
        using, now=now, settle=SETTLE, keep=chart_retention("CHARTS_MINUTE_RETENTION"),
        most=CATCH_UP_MINUTES,
    )


#: Minutes one record_samples() call records at most (a worker catching up calls again).
CATCH_UP_MINUTES = 60


class Tally:
    """The counting service each worker runs every ``TALLY_INTERVAL`` seconds."""

    name = "tally"

    def __init__(self, context: ServiceContext):
        self.context = context
        # The end of the last minute this worker tried to record: it tries once per minute.
        self.recorded_until: datetime | None = None

    def run(self, now: datetime) -> float:
        tally(self.context.using, now=now)
        target = series.floor_minute(now - SETTLE)
        if is_postgres(self.context.using) and (self.recorded_until is None or target > self.recorded_until):
            done = record_samples(self.context.using, now=now)
            # Behind (an outage): try again at the next run rather than a minute later.
            self.recorded_until = target if done.until is None or done.until >= target else done.until
        return TALLY_INTERVAL
