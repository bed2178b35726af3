"""Maintenance statements: rescuing the jobs of lost workers, pruning finished jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections

from ..models import FINISHED_STATUSES, JobStatus
from .connection import placeholders
from .tables import SCHEDULE_TABLE, TABLE, WORKER_TABLE

def rescue_lost(
    using: str,
    *,
    now: datetime,
    stale_before: datetime,
    worker_ids: Sequence[str] = (),
    rescuer: str,
    unlisted_after: float | None = None,
) -> list[tuple[int, str, str]]:
    """Give back jobs whose worker is gone; return (id, name, new status) for each.

    A job is lost when it is running for a worker that has no heartbeat since ``stale_before`` (or
    no row at all, once the job started before ``stale_before``), or for one of ``worker_ids``
    (a restarted worker naming its own previous incarnations). With ``unlisted_after`` (seconds),
    also when its worker is alive but the list of held jobs it published that long after the
    claim doesn't name it: the claim's reply never reached the worker, which will never run it.
    The lost attempt is recorded as failed with a WorkerLost error; the job goes to retrying, or
    dead when its attempts are spent, or stopped when someone had asked it to stop. SKIP LOCKED
    plus the status check make two rescuers running at once split the rows instead of rescuing
    one twice.
    """
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    workers = WORKER_TABLE
    running = JobStatus.RUNNING.value
    own = f"OR j.worker_id IN {placeholders(worker_ids)}" if worker_ids else ""
    select = (
        f"SELECT j.id FROM {TABLE} AS j WHERE j.status = '{running}' AND ("
        f"(j.started_at < %s AND NOT EXISTS (SELECT 1 FROM {workers} AS w "
        f"WHERE w.worker_id = j.worker_id AND w.last_heartbeat >= %s)) {own})"
    )
    rows = _rescue(
        using, select, [adapt(stale_before), adapt(stale_before), *worker_ids],
        "the worker running this attempt stopped sending heartbeats", now=now, rescuer=rescuer,
    )
    if unlisted_after is None:
        return rows
    if connection.vendor == "postgresql":
        unlisted = (
            "w.listed_at > j.started_at + make_interval(secs => %s) "
            "AND NOT (w.running @> to_jsonb(j.id))"
        )
    else:
        unlisted = (
            "julianday(w.listed_at) > julianday(j.started_at) + %s / 86400.0 "
            "AND NOT EXISTS (SELECT 1 FROM json_each(w.running) AS r WHERE r.value = j.id)"
        )
    select = (
        f"SELECT j.id FROM {TABLE} AS j WHERE j.status = '{running}' AND EXISTS (SELECT 1 FROM "
        f"{workers} AS w WHERE w.worker_id = j.worker_id AND w.last_heartbeat >= %s AND {unlisted})"
    )
    return rows + _rescue(
        using, select, [adapt(stale_before), unlisted_after],
        "the live worker that claimed this attempt never listed it among its jobs "
        "(the claim's reply was lost on the way to it)", now=now, rescuer=rescuer,
    )


def _rescue(
    using: str, select: str, params: list[Any], message: str, *, now: datetime, rescuer: str
) -> list[tuple[int, str, str]]:
    """Record a WorkerLost attempt on the running jobs ``select`` finds (see rescue_lost)."""
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    running = JobStatus.RUNNING.value
    if connection.vendor == "postgresql":
        select += " FOR UPDATE SKIP LOCKED"
        entry = (
            "history || jsonb_build_array(jsonb_build_object("
            "'attempt', attempts, 'worker', worker_id, 'started_at', started_at, "
            "'finished_at', CAST(%s AS timestamptz), 'outcome', 'lost', 'rescued_by', CAST(%s AS text), "
            "'error', jsonb_build_object('class', 'django_jobs.exceptions.WorkerLost', "
            "'message', CAST(%s AS text), 'traceback', '')))"
        )
    else:
        entry = (
            "json_insert(history, '$[#]', json_object("
            "'attempt', attempts, 'worker', worker_id, 'started_at', started_at, "
            "'finished_at', %s, 'outcome', 'lost', 'rescued_by', %s, "
            "'error', json_object('class', 'django_jobs.exceptions.WorkerLost', "
            "'message', %s, 'traceback', '')))"
        )
    new_status = (
        f"CASE WHEN stop_requested_at IS NOT NULL THEN '{JobStatus.STOPPED.value}' "
        f"WHEN attempts >= max_attempts THEN '{JobStatus.DEAD.value}' "
        f"ELSE '{JobStatus.RETRYING.value}' END"
    )
    finished = (
        "CASE WHEN stop_requested_at IS NOT NULL OR attempts >= max_attempts THEN %s ELSE NULL END"
    )
    sql = (
        f"UPDATE {TABLE} SET history = {entry}, status = {new_status}, finished_at = {finished}, "
        f"run_at = %s, worker_id = '', last_error = %s "
        f"WHERE id IN ({select}) AND status = '{running}' RETURNING id, name, status"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [
            adapt(now), rescuer, message,  # history entry
            adapt(now), adapt(now),  # finished_at, run_at
            f"WorkerLost: {message}",
            *params,
        ])
        return [tuple(r) for r in cursor.fetchall()]


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
    schedules = SCHEDULE_TABLE
    where = (
        f"status = %s AND finished_at < %s AND NOT EXISTS "
        f"(SELECT 1 FROM {schedules} AS s WHERE s.last_job_id = {TABLE}.id)"
    )
    params = [status, connection.ops.adapt_datetimefield_value(finished_before)]
    with connection.cursor() as cursor:
        if dry_run:
            cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE {where}", params)
            return int(cursor.fetchone()[0])
        lock = "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
        cursor.execute(
            f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM {TABLE} WHERE {where} LIMIT %s {lock})",
            [*params, batch],
        )
        return cursor.rowcount
