"""What the statements share: table names and status predicates, each spelled once."""

from __future__ import annotations

from collections.abc import Iterable

from ..models import ACTIVE_STATUSES, READY_STATUSES, Job, JobStatus, Schedule, UniqueWhile, Worker

TABLE = Job._meta.db_table
WORKER_TABLE = Worker._meta.db_table
SCHEDULE_TABLE = Schedule._meta.db_table


def status_in(statuses: Iterable[JobStatus], column: str = "status") -> str:
    """Return ``status IN ('queued', 'retrying')``: literals, for the planner's sake."""
    # Literals, spelled like the partial indexes' predicates, so the planner can prove that an
    # index applies (a bound parameter would hide the value from it).
    return f"{column} IN (" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


def status_is(status: JobStatus) -> str:
    """Return ``status = 'dead'``: a literal, as in ``status_in``."""
    return f"status = '{status.value}'"


# The ready index's predicate, which the claim and the overview repeat so the index applies.
READY_SQL = status_in(READY_STATUSES)
ACTIVE_SQL = status_in(ACTIVE_STATUSES)

# The jobs holding a unique_key in each scope (unique_while): the predicates of the two partial
# unique indexes (models.KEY_HOLDERS), spelled exactly as Django writes them, since SQLite only
# matches an ON CONFLICT target to an index with the same WHERE (tests/unit/db/test_tables.py
# compares them).
KEY_HOLDERS_SQL = {
    UniqueWhile.ACTIVE.value: f"unique_key IS NOT NULL AND {ACTIVE_SQL} AND unique_while = 'active'",
    UniqueWhile.WAITING.value: (
        f"unique_key IS NOT NULL AND started_at IS NULL AND {status_is(JobStatus.QUEUED)} "
        f"AND unique_while = 'waiting'"
    ),
}


def unique_target(scope: str) -> str:
    """The ON CONFLICT target of the unique-key index of ``scope`` ("active" or "waiting")."""
    return f"(unique_key) WHERE {KEY_HOLDERS_SQL[scope]}"


# Rows no flow-control gate holds: the plain claim takes only these (the gated claim, db/gates.py,
# the others). With READY_SQL, the predicate of django_jobs_ready_idx.
UNGATED_SQL = "concurrency_key IS NULL AND rate_key IS NULL AND sequence_key IS NULL"
# Ungated rows not set aside by a worker that didn't know their name: with READY_SQL, exactly the
# predicate of django_jobs_ready_idx (the plain claim walks it). Parked rows are in
# django_jobs_parked_idx instead (PARKED_SQL with READY_SQL).
PLAIN_SQL = f"{UNGATED_SQL} AND parked_at IS NULL"
PARKED_SQL = "parked_at IS NOT NULL"
# Rows a concurrency or rate key holds (not a sequence): django_jobs_keyed_idx's predicate.
KEYED_SQL = "sequence_key IS NULL AND (concurrency_key IS NOT NULL OR rate_key IS NOT NULL)"
# The expression django_jobs_keyed_idx is ordered by first.
KEY_EXPR = "COALESCE(concurrency_key, rate_key)"
