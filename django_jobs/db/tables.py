"""What the statements share: table names and status predicates, each spelled once."""

from __future__ import annotations

from collections.abc import Iterable

from ..models import ACTIVE_STATUSES, READY_STATUSES, Job, JobStatus, Schedule, Worker

TABLE = Job._meta.db_table
WORKER_TABLE = Worker._meta.db_table
SCHEDULE_TABLE = Schedule._meta.db_table


def status_in(statuses: Iterable[JobStatus]) -> str:
    """Return ``status IN ('queued', 'retrying')``: literals, for the planner's sake."""
    # Literals, spelled like the partial indexes' predicates, so the planner can prove that an
    # index applies (a bound parameter would hide the value from it).
    return "status IN (" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


def status_is(status: JobStatus) -> str:
    """Return ``status = 'dead'``: a literal, as in ``status_in``."""
    return f"status = '{status.value}'"


# The ready index's predicate, which the claim and the overview repeat so the index applies.
READY_SQL = status_in(READY_STATUSES)
# Spelled, with " AND unique_key IS NOT NULL" after it, exactly as Django writes the partial unique
# index's predicate: SQLite only matches an ON CONFLICT target to an index with the same WHERE.
ACTIVE_SQL = status_in(ACTIVE_STATUSES)

# Rows no flow-control gate holds: the plain claim takes only these (the gated claim, db/gates.py,
# the others). With READY_SQL, the predicate of django_jobs_ready_idx.
UNGATED_SQL = "concurrency_key IS NULL AND rate_key IS NULL AND sequence_key IS NULL"
# Rows a concurrency or rate key holds (not a sequence): django_jobs_keyed_idx's predicate.
KEYED_SQL = "sequence_key IS NULL AND (concurrency_key IS NOT NULL OR rate_key IS NOT NULL)"
# The expression django_jobs_keyed_idx is ordered by first.
KEY_EXPR = "COALESCE(concurrency_key, rate_key)"
