"""Maintenance statements: rescuing the jobs of lost workers, pruning finished jobs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connections
from django.utils.dateparse import parse_datetime

from ..lifecycle import Attempt, Transition
from ..models import FINISHED_STATUSES, JobStatus
from .claims import run_outcome_statement, with_workflow_steps
from .connection import placeholders
from .tables import (
    PARKED_SQL,
    READY_SQL,
    SCHEDULE_TABLE,
    TABLE,
    WORKER_TABLE,
    lost_count_sql,
    status_in,
)
from .workflows import DEPENDENCY_TABLE


@dataclass(frozen=True)
class LostAttempt:
    """A running attempt whose worker is gone, locked by lock_lost() for its rescuer."""

    attempt: Attempt
    stop_requested: bool
    #: Its worker is alive but never listed it: the claim's reply was lost on the way there.
    unlisted: bool
    #: Its worker's row declares which jobs it may have sent to a child, and not this one: it
    #: provably never started (see Worker.may_start).
    unstarted: bool = False
    #: How many times the job was lost before (``lost`` entries in its history), for MAX_LOST.
    lost_before: int = 0


def lock_stale_workers(using: str, *, stale_before: datetime, worker_ids: Sequence[str] = ()) -> None:
    """Lock the rows of the workers whose jobs a rescue may take (call inside a transaction,
    before lock_lost()).

    A worker writes its declaration of the jobs it may start (Worker.may_start) into its row. A
    worker taken for dead may still be alive (frozen, cut off): with its row locked from before
    rescue reads the declaration until the rescue commits (and deletes the row), the worker can't
    declare, and then start, a job rescue is giving back as never started. In worker_id order,
    so two rescuers never deadlock. (SQLite has one writer at a time already.)
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    own = f"OR worker_id IN {placeholders(worker_ids)}" if worker_ids else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT worker_id FROM {WORKER_TABLE} WHERE last_heartbeat < %s {own} ORDER BY worker_id FOR UPDATE",
            [stale_before, *worker_ids],
        )


def lock_lost(
    using: str,
    *,
    now: datetime,
    stale_before: datetime,
    worker_ids: Sequence[str] = (),
    unlisted_after: float | None = None,
) -> list[LostAttempt]:
    """Lock and return the running attempts whose worker is gone (call inside a transaction).

    An attempt is lost when its worker has no heartbeat since ``stale_before`` (or no row at all,
    once the attempt started before ``stale_before``), or is one of ``worker_ids`` (a restarted
    worker naming its own previous incarnations). With ``unlisted_after`` (seconds), also when its
    worker is alive but the list of held jobs it published that long after the claim doesn't name
    it. SKIP LOCKED lets two rescuers running at once split the rows instead of waiting, and the
    outcome write's fence keeps either from rescuing a row twice.

    Each attempt comes with whether it provably never started (its worker's row has a declaration
    of the jobs it may have started, without this one) and how many times its job was lost before.
    """
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    running = JobStatus.RUNNING.value
    alive = "w.worker_id = j.worker_id AND w.last_heartbeat >= %s"
    if unlisted_after is None:
        unlisted, unlisted_params = "FALSE", []
    elif connection.vendor == "postgresql":
        unlisted = (
            f"EXISTS (SELECT 1 FROM {WORKER_TABLE} AS w WHERE {alive} "
            f"AND w.listed_at > j.started_at + make_interval(secs => %s) "
            f"AND NOT (w.running @> to_jsonb(j.id)))"
        )
        unlisted_params = [adapt(stale_before), unlisted_after]
    else:
        unlisted = (
            f"EXISTS (SELECT 1 FROM {WORKER_TABLE} AS w WHERE {alive} "
            f"AND julianday(w.listed_at) > julianday(j.started_at) + %s / 86400.0 "
            f"AND NOT EXISTS (SELECT 1 FROM json_each(w.running) AS r WHERE r.value = j.id))"
        )
        unlisted_params = [adapt(stale_before), unlisted_after]
    if connection.vendor == "postgresql":
        unstarted = (
            f"EXISTS (SELECT 1 FROM {WORKER_TABLE} AS w WHERE w.worker_id = j.worker_id "
            f"AND jsonb_typeof(w.may_start) = 'array' AND NOT (w.may_start @> to_jsonb(j.id)))"
        )
    else:
        unstarted = (
            f"EXISTS (SELECT 1 FROM {WORKER_TABLE} AS w WHERE w.worker_id = j.worker_id "
            f"AND json_type(w.may_start) = 'array' "
            f"AND NOT EXISTS (SELECT 1 FROM json_each(w.may_start) AS r WHERE r.value = j.id))"
        )
    lost_count = lost_count_sql(connection.vendor, "j")
    own = f"OR j.worker_id IN {placeholders(worker_ids)}" if worker_ids else ""
    lock = " FOR UPDATE OF j SKIP LOCKED" if connection.vendor == "postgresql" else ""
    sql = (
        f"SELECT j.id, j.name, j.attempts, j.max_attempts, j.worker_id, j.started_at, "
        f"j.stop_requested_at IS NOT NULL, {unlisted}, {unstarted}, {lost_count} "
        f"FROM {TABLE} AS j WHERE j.status = '{running}' AND ("
        f"(NOT EXISTS (SELECT 1 FROM {WORKER_TABLE} AS w WHERE {alive}) AND (j.started_at < %s "
        f"OR EXISTS (SELECT 1 FROM {WORKER_TABLE} AS w WHERE w.worker_id = j.worker_id))) "
        f"{own} OR {unlisted}){lock}"
    )
    # Every running job of a silent worker whose row is there is rescued in one pass, with its
    # declaration (the pass deletes the row): one claimed just before the worker died must not
    # wait for a later pass that would find no row, and could prove nothing.
    params = [*unlisted_params, adapt(stale_before), adapt(stale_before), *worker_ids, *unlisted_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        LostAttempt(
            Attempt(job_id=job_id, name=name, attempt=attempts, max_attempts=max_attempts,
                    worker_id=worker_id, started_at=_aware(started),
                    duration=max(0.0, (now - _aware(started)).total_seconds())),
            bool(stop), bool(unlisted_flag) and worker_id not in worker_ids, bool(unstarted_flag), int(lost),
        )
        for job_id, name, attempts, max_attempts, worker_id, started, stop, unlisted_flag, unstarted_flag, lost
        in rows
    ]


def _aware(value: datetime | str) -> datetime:
    # SQLite hands raw SQL's datetimes back as naive UTC text.
    moment = value if isinstance(value, datetime) else parse_datetime(value)
    assert moment is not None, value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Finished jobs of one status past their retention, not pointed at by a schedule's last_job (a
# raw DELETE would trip that foreign key), and not the upstream job of one that hasn't finished
# (it may still read its result; only rows with downstream_version > 0 have such jobs, so the
# others skip the look-up). Spelled once for the count and the delete.
#
# An enqueue after a job bumps its downstream_version (db/workflows.HOLD_UPSTREAM). When one
# commits while a batch runs, the batch's FOR UPDATE finds the row changed and checks these
# conditions again on the new row, but its subqueries still read the batch's snapshot, which has
# no edge yet: the job would pass as prunable, and the new job would lose its upstream. So a row
# with jobs downstream must also have the downstream_version the snapshot has: a changed one is
# left for a later batch, which sees the edge (the same check as the outcome write's in
# db/claims._FLOW).
_PRUNABLE = (
    f"status = %s AND finished_at < %s AND NOT EXISTS "
    f"(SELECT 1 FROM {SCHEDULE_TABLE} AS s WHERE s.last_job_id = {TABLE}.id) "
    f"AND ({TABLE}.downstream_version = 0 OR ({TABLE}.downstream_version = "
    f"(SELECT s.downstream_version FROM {TABLE} AS s WHERE s.id = {TABLE}.id) "
    f"AND NOT EXISTS (SELECT 1 FROM {DEPENDENCY_TABLE} AS e "
    f"JOIN {TABLE} AS d ON d.id = e.downstream_id WHERE e.upstream_id = {TABLE}.id "
    f"AND NOT {status_in(FINISHED_STATUSES, 'd.status')})))"
)
# How many prune() would delete (prunejobs --dry-run).
PRUNABLE_COUNT = f"SELECT count(*) FROM {TABLE} WHERE {_PRUNABLE}"
# Delete one bounded batch: a short statement and modest WAL however much is due (SQLite, which
# has one writer anyway).
PRUNE_BATCH = f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} WHERE {_PRUNABLE} LIMIT %s)"
# On PostgreSQL the same, and the workflow edges of the deleted jobs with them, in one statement.
# SKIP LOCKED passes over rows another pruner is deleting, or an operator's verb holds. The rows
# are deleted by their ctid: the subquery's row lock keeps each where it is until the DELETE, and
# a TID scan costs half of finding each row again by its primary key (3 ms against 6.3 ms of
# planning and execution for 1,000 rows). A row updated between the statement's snapshot and its
# lock is checked again (an operator's retry makes it not due); if still due it may come back
# with the ctid of the version the snapshot saw, where the DELETE then finds a newer version and
# leaves it: the next batch deletes it. Nothing is deleted that the lock didn't check.
PRUNE_BATCH_PG = (
    f"WITH deleted AS (DELETE FROM {TABLE} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {TABLE} "
    f"WHERE {_PRUNABLE} LIMIT %s FOR UPDATE SKIP LOCKED)) RETURNING id), "
    f"up AS (DELETE FROM {DEPENDENCY_TABLE} WHERE upstream_id IN (SELECT id FROM deleted)), "
    f"down AS (DELETE FROM {DEPENDENCY_TABLE} WHERE downstream_id IN (SELECT id FROM deleted)) "
    f"SELECT count(*) FROM deleted"
)


def prune(using: str, *, status: str, finished_before: datetime, batch: int, dry_run: bool = False) -> int:
    """Delete up to ``batch`` jobs finished with ``status`` before ``finished_before``.

    Bounded batches keep each statement short (no long locks, modest WAL) however much is due;
    callers loop. Only finished statuses are ever passed in, and the WHERE clause repeats the
    status, so nothing that can still run is deleted. A job that a schedule points at as its
    ``last_job`` is kept (a raw DELETE would trip that foreign key).
    """
    if status not in {s.value for s in FINISHED_STATUSES}:
        raise ValueError(f"prune() only deletes finished jobs, not {status!r}")
    connection = connections[using]
    params = [status, connection.ops.adapt_datetimefield_value(finished_before)]
    with connection.cursor() as cursor:
        if dry_run:
            cursor.execute(PRUNABLE_COUNT, params)
            return int(cursor.fetchone()[0])
        if connection.vendor == "postgresql":
            cursor.execute(PRUNE_BATCH_PG, [*params, batch])
            return int(cursor.fetchone()[0])
        cursor.execute(PRUNE_BATCH, [*params, batch])
        return cursor.rowcount


# -- jobs whose name no worker knows --------------------------------------------------------------

# Parked ready jobs (claims._PARK), by name: django_jobs_parked_idx holds them and nothing else,
# so this reads only them (none, but during a deploy or for a name no code defines).
PARKED_BY_NAME = (
    f"SELECT name, count(*), min(parked_at) FROM {TABLE} WHERE {READY_SQL} AND {PARKED_SQL} GROUP BY name"
)
# End one name's jobs parked before a cutoff, a bounded batch at a time, with the decision
# lifecycle.never_known() made (the same for each). The WHERE repeats what makes them doomed, so a
# job a worker put back or claimed meanwhile is left alone; SKIP LOCKED passes over rows a claim
# or an unpark holds right now.
END_UNKNOWN = (
    f"UPDATE {TABLE} SET status = %s, finished_at = %s, last_error = %s, "
    f"history = {{append}} WHERE id IN (SELECT id FROM {TABLE} WHERE {READY_SQL} AND {PARKED_SQL} "
    f"AND name = %s AND parked_at <= %s ORDER BY id LIMIT %s{{lock}})"
)


def parked_by_name(using: str) -> list[tuple[str, int, datetime]]:
    """(name, jobs, parked since) of the names whose ready jobs some worker set aside."""
    with connections[using].cursor() as cursor:
        cursor.execute(PARKED_BY_NAME)
        return [(name, int(n), _aware(since)) for name, n, since in cursor.fetchall()]


def end_unknown(
    using: str, *, name: str, parked_before: datetime, transition: Transition, now: datetime, batch: int = 1000
) -> int:
    """Apply ``transition`` (dead) to up to ``batch`` parked jobs of ``name`` parked before
    ``parked_before``; return how many."""
    connection = connections[using]
    postgres = connection.vendor == "postgresql"
    # (SQLite keeps JSON as text, with functions of its own.)
    append = "history || jsonb_build_array(%s::jsonb)" if postgres else "json_insert(history, '$[#]', json(%s))"
    sql = END_UNKNOWN.format(append=append, lock=" FOR UPDATE SKIP LOCKED" if postgres else "")
    adapt = connection.ops.adapt_datetimefield_value
    params = [
        transition.status.value, adapt(now), transition.last_error or "",
        json.dumps(transition.history_entry), name, adapt(parked_before), batch,
    ]
    if postgres:
        # Jobs waiting downstream of the ones that end dead end stopped in the same statement,
        # which runs again when an enqueue after one of them committed while it ran.
        sql = with_workflow_steps(f"{sql} RETURNING id, status, downstream_version, finished_at", "count(*)")
        return int(run_outcome_statement(using, sql, params)[0][0])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
