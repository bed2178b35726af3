"""What the statements share: table names and status predicates, each spelled once."""

from __future__ import annotations

from collections.abc import Iterable

from ..models import ACTIVE_STATUSES, READY_STATUSES, Job, JobStatus, Schedule, Worker

TABLE = Job._meta.db_table
WORKER_TABLE = Worker._meta.db_table
SCHEDULE_TABLE = Schedule._meta.db_table


def status_in(statuses: Iterable[JobStatus]) -> str:
    """``status IN ('queued', 'retrying')``: a predicate over statuses, as SQL text."""
    return "status IN (" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


# Spelled exactly like the ready index's predicate, so the planner can prove the index applies.
READY_SQL = status_in(READY_STATUSES)
# Spelled, with " AND unique_key IS NOT NULL" after it, exactly as Django writes the partial unique
# index's predicate: SQLite only matches an ON CONFLICT target to an index with the same WHERE.
ACTIVE_SQL = status_in(ACTIVE_STATUSES)
