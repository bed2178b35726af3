"""Retention: delete finished jobs once they are older than ``DJANGO_JOBS["RETENTION"]`` says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from ..conf import jobs_settings
from ..db import gates, maintenance, series
from ..db.connection import is_postgres
from ..flow import MAX_PERIOD
from ..log import log_event
from ..models import FINISHED_STATUSES

if TYPE_CHECKING:
    from . import ServiceContext


def retention() -> dict[str, timedelta | None]:
    """How long each finished status is kept; None keeps it forever."""
    configured = jobs_settings.RETENTION or {}
    result: dict[str, timedelta | None] = {}
    for status in FINISHED_STATUSES:
        value = configured.get(status.value)
        if value is None:
            result[status.value] = None
        elif isinstance(value, timedelta):
            result[status.value] = value
        else:
            result[status.value] = timedelta(seconds=float(value))
    return result


def chart_retention(key: str) -> timedelta:
    """How long the charts keep buckets: ``CHARTS_MINUTE_RETENTION`` or ``CHARTS_HOUR_RETENTION``."""
    value = getattr(jobs_settings, key)
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


def _in_batches(delete: Callable[[], int], batch: int, max_batches: int | None) -> int:
    """Call ``delete`` (one batch of at most ``batch`` rows) until a batch comes back short, or
    ``max_batches`` times; return how many rows it deleted in all."""
    total = batches = 0
    while max_batches is None or batches < max_batches:
        deleted = delete()
        total += deleted
        batches += 1
        if deleted < batch:
            break
    return total


def prune_samples(using: str, *, now: datetime, max_batches: int | None = None) -> dict[int, int]:
    """Delete the charts' buckets past their retention, in bounded batches: {span: deleted}."""
    batch = int(jobs_settings.PRUNE_BATCH)
    counts: dict[int, int] = {}
    for span, key in ((series.MINUTE, "CHARTS_MINUTE_RETENTION"), (series.HOUR, "CHARTS_HOUR_RETENTION")):
        before = now - chart_retention(key)
        counts[span] = _in_batches(
            partial(series.prune, using, span=span, before=before, batch=batch), batch, max_batches
        )
    return counts


def prune(
    using: str, *, now: datetime, dry_run: bool = False, batch: int | None = None,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Delete (or with ``dry_run`` count) finished jobs past retention, in bounded batches."""
    batch = batch or int(jobs_settings.PRUNE_BATCH)
    counts: dict[str, int] = {}
    for status, keep in retention().items():
        if keep is None:
            continue
        cutoff = now - keep
        if dry_run:
            counts[status] = maintenance.prune(using, status=status, finished_before=cutoff, batch=batch, dry_run=True)
            continue
        total = _in_batches(
            partial(maintenance.prune, using, status=status, finished_before=cutoff, batch=batch),
            batch, max_batches,
        )
        counts[status] = total
        if total:
            log_event("pruned", status=status, jobs=total, older_than=cutoff.isoformat())
    return counts


class Pruner:
    """The pruning service: every ``PRUNE_INTERVAL`` seconds, at most 20 batches per status."""

    name = "prune"

    def __init__(self, context: ServiceContext):
        self.context = context

    def run(self, now: datetime) -> float:
        prune(self.context.using, now=now, max_batches=20)
        # The rate gates' start log: nothing reads a start older than the longest period.
        if is_postgres(self.context.using):
            gates.prune_starts(self.context.using, now - MAX_PERIOD)
            prune_samples(self.context.using, now=now, max_batches=20)
        return float(jobs_settings.PRUNE_INTERVAL)
