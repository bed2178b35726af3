"""Every hand-written SQL statement of the job table, each with why it is shaped so.

The ORM would need several round trips (or a table lock) for what each of these does in one
statement. PostgreSQL is the production database; SQLite gets equivalent statements without
SKIP LOCKED (SQLite serialises writers, so one statement is already atomic there).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable, Sequence

from django.db import connections

from .models import FINISHED_STATUSES, READY_STATUSES, Job, JobStatus, Schedule, Worker

TABLE = Job._meta.db_table
CHANNEL = "django_jobs"

# Columns written by insert_jobs(): every concrete field but the serial id.
_INSERT_FIELDS = [f for f in Job._meta.concrete_fields if f.column != "id"]


def _in(values: Sequence[Any]) -> str:
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def _ready_sql() -> str:
    # Spelled exactly like the partial index's predicate so the planner can prove it applies.
    return "status IN (" + ", ".join(f"'{s.value}'" for s in READY_STATUSES) + ")"


def is_postgres(using: str) -> bool:
    return connections[using].vendor == "postgresql"


def _json_param(using: str, value: Any) -> Any:
    # The JSONField knows each backend's adapter (psycopg's Jsonb, or a string for SQLite).
    return Job._meta.get_field("result").get_db_prep_save(value, connections[using])


def _load_json(value: Any) -> Any:
    # Django registers a text loader for jsonb, so raw cursors get JSON text on every backend.
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def insert_jobs(jobs: list[Job], using: str) -> list[bool]:
    """INSERT the jobs in one statement; set their ids; return which ones were inserted.

    A job whose unique_key already belongs to an active job (or to an earlier job of the same batch)
    is not inserted (ON CONFLICT … DO NOTHING against the partial unique index): the caller then
    looks up the existing one. On PostgreSQL the same statement NOTIFYs each queue it inserted into;
    NOTIFY is transactional, so idle workers wake when the caller's transaction commits and never
    for a rolled-back enqueue.
    """
    connection = connections[using]
    qn = connection.ops.quote_name
    columns = ", ".join(qn(f.column) for f in _INSERT_FIELDS)
    row = "(" + ", ".join(["%s"] * len(_INSERT_FIELDS)) + ")"
    params: list[Any] = []
    for job in jobs:
        params.extend(f.get_db_prep_save(getattr(job, f.attname), connection) for f in _INSERT_FIELDS)
    active = ", ".join(f"'{s.value}'" for s in (JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.RUNNING))
    insert = (
        f"INSERT INTO {qn(TABLE)} ({columns}) VALUES {', '.join([row] * len(jobs))} "
        f"ON CONFLICT (unique_key) WHERE status IN ({active}) DO NOTHING "
        f"RETURNING id, unique_key, queue"
    )
    if connection.vendor == "postgresql":
        # The notify CTE is referenced from the outer SELECT as an uncorrelated sub-select, which
        # PostgreSQL evaluates once (an InitPlan): one pg_notify per distinct queue, not per row.
        sql = (
            f"WITH inserted AS ({insert}), "
            f"notified AS (SELECT pg_notify('{CHANNEL}', q.queue) FROM "
            f"(SELECT DISTINCT queue FROM inserted) AS q) "
            f"SELECT id, unique_key, (SELECT count(*) FROM notified) FROM inserted"
        )
    else:
        sql = insert
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    # Rows come back in VALUES order; walk both lists to pair them up.
    inserted: list[bool] = []
    position = 0
    seen_keys: set[str] = set()
    for job in jobs:
        key = job.unique_key
        match = (
            position < len(returned)
            and (key is None or (returned[position][1] == key and key not in seen_keys))
        )
        if match:
            job.id = returned[position][0]
            job._state.adding = False
            job._state.db = using
            position += 1
            if key is not None:
                seen_keys.add(key)
        inserted.append(bool(match))
    return inserted


def claim(
    using: str,
    *,
    worker_id: str,
    limit: int,
    now: datetime,
    queues: Sequence[str] = (),
    paused_queues: Sequence[str] = (),
    paused_names: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Claim up to ``limit`` ready jobs for ``worker_id`` in one statement and return them.

    The inner SELECT walks django_jobs_ready_idx in claim order (priority DESC, run_at, id).
    FOR UPDATE SKIP LOCKED lets concurrent workers pass over rows another worker is claiming
    instead of waiting on its lock. The CTE keeps LIMIT attached to the locking SELECT (an
    ``id IN (subquery)`` can be planned as a join that runs the subquery more than once), and the
    UPDATE marks the rows running in the same statement, so no claimed row is ever seen as queued
    and no transaction stays open while the job runs. ``attempts`` goes up here, at the claim: it
    is the fencing token every outcome write checks.
    """
    connection = connections[using]
    filters = [_ready_sql(), "run_at <= %s"]
    params: list[Any] = [connection.ops.adapt_datetimefield_value(now)]
    if queues:
        filters.append(f"queue IN {_in(queues)}")
        params.extend(queues)
    if paused_queues:
        filters.append(f"queue NOT IN {_in(paused_queues)}")
        params.extend(paused_queues)
    if paused_names:
        filters.append(f"name NOT IN {_in(paused_names)}")
        params.extend(paused_names)
    where = " AND ".join(filters)
    select = f"SELECT id FROM {TABLE} WHERE {where} ORDER BY priority DESC, run_at, id LIMIT %s"
    params.append(limit)
    set_running = (
        f"status = '{JobStatus.RUNNING.value}', attempts = attempts + 1, started_at = %s, "
        f"worker_id = %s, stop_requested_at = NULL"
    )
    params.extend([connection.ops.adapt_datetimefield_value(now), worker_id])
    returning = "RETURNING " + ", ".join(
        f"{TABLE}.{c}" for c in ("id", "name", "args", "kwargs", "queue", "attempts", "max_attempts", "timeout")
    )
    if connection.vendor == "postgresql":
        sql = (
            f"WITH claimable AS ({select} FOR UPDATE SKIP LOCKED) "
            f"UPDATE {TABLE} SET {set_running} FROM claimable "
            f"WHERE {TABLE}.id = claimable.id {returning}"
        )
    else:
        sql = f"UPDATE {TABLE} SET {set_running} WHERE id IN ({select}) {returning}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        {
            "id": r[0],
            "name": r[1],
            "args": _load_json(r[2]),
            "kwargs": _load_json(r[3]),
            "queue": r[4],
            "attempt": r[5],
            "max_attempts": r[6],
            "timeout": r[7],
        }
        for r in rows
    ]


_UNSET: Any = object()


def record_outcome(
    using: str,
    *,
    job_id: int,
    attempt: int,
    worker_id: str,
    status: JobStatus,
    history_entry: dict[str, Any],
    finished_at: datetime,
    run_at: datetime | None = None,
    result: Any = _UNSET,
    last_error: str | None = None,
    attempts_delta: int = 0,
    max_attempts_delta: int = 0,
) -> str | None:
    """Write one attempt's outcome, fenced by the claim; return the status written, or None when
    the claim was lost.

    The WHERE clause checks that the job is still running *this* attempt for *this* worker. A worker
    that was frozen while its job was rescued and claimed again finds 0 rows here, so it can't
    overwrite the newer attempt's outcome. A stop request beats every other outcome: whatever the
    attempt did, a job someone asked to stop ends ``stopped`` (decided here, in the same statement,
    so a request that lands while the outcome is being written is never lost).
    """
    connection = connections[using]
    stopped = JobStatus.STOPPED.value
    adapt = connection.ops.adapt_datetimefield_value
    sets = [
        "status = CASE WHEN stop_requested_at IS NULL THEN %s ELSE %s END",
        "worker_id = ''",
        "finished_at = CASE WHEN stop_requested_at IS NULL THEN %s ELSE %s END",
    ]
    done = status in FINISHED_STATUSES
    params: list[Any] = [status.value, stopped, adapt(finished_at) if done else None, adapt(finished_at)]
    if connection.vendor == "postgresql":
        sets.append("history = history || CAST(%s AS jsonb)")
        params.append(json.dumps([history_entry]))
    else:
        sets.append("history = json_insert(history, '$[#]', json(%s))")
        params.append(json.dumps(history_entry))
    if run_at is not None:
        sets.append("run_at = %s")
        params.append(adapt(run_at))
    if result is not _UNSET:
        sets.append("result = %s")
        params.append(_json_param(using, result))
    if last_error is not None:
        sets.append("last_error = CASE WHEN stop_requested_at IS NULL THEN %s ELSE %s END")
        params.extend([last_error, "stopped on request"])
    elif status != JobStatus.SUCCEEDED:
        sets.append("last_error = CASE WHEN stop_requested_at IS NULL THEN last_error ELSE %s END")
        params.append("stopped on request")
    if attempts_delta:
        sets.append("attempts = attempts + CASE WHEN stop_requested_at IS NULL THEN %s ELSE 0 END")
        params.append(attempts_delta)
    if max_attempts_delta:
        sets.append("max_attempts = max_attempts + %s")
        params.append(max_attempts_delta)
    sql = (
        f"UPDATE {TABLE} SET {', '.join(sets)} "
        f"WHERE id = %s AND status = '{JobStatus.RUNNING.value}' AND attempts = %s AND worker_id = %s "
        f"RETURNING status"
    )
    params.extend([job_id, attempt, worker_id])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def rescue_lost(
    using: str,
    *,
    now: datetime,
    stale_before: datetime,
    worker_ids: Sequence[str] = (),
    rescuer: str,
) -> list[tuple[int, str, str]]:
    """Give back jobs whose worker is gone; return (id, name, new status) for each.

    A job is lost when it is running for a worker that has no heartbeat since ``stale_before`` (or
    no row at all, once the job started before ``stale_before``), or for one of ``worker_ids``
    (a restarted worker naming its own previous incarnations). The lost attempt is recorded as
    failed with a WorkerLost error; the job goes to retrying, or dead when its attempts are spent,
    or stopped when someone had asked it to stop. SKIP LOCKED plus the status check make two
    rescuers running at once split the rows instead of rescuing one twice.
    """
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    workers = Worker._meta.db_table
    running = JobStatus.RUNNING.value
    own = f"OR j.worker_id IN {_in(worker_ids)}" if worker_ids else ""
    message = "WorkerLost: the worker running this attempt stopped sending heartbeats"
    if connection.vendor == "postgresql":
        lock = "FOR UPDATE SKIP LOCKED"
        entry = (
            "history || jsonb_build_array(jsonb_build_object("
            "'attempt', attempts, 'worker', worker_id, 'started_at', started_at, "
            "'finished_at', CAST(%s AS timestamptz), 'outcome', 'lost', 'rescued_by', CAST(%s AS text), "
            "'error', jsonb_build_object('class', 'django_jobs.exceptions.WorkerLost', "
            "'message', CAST(%s AS text), 'traceback', '')))"
        )
    else:
        lock = ""
        entry = (
            "json_insert(history, '$[#]', json_object("
            "'attempt', attempts, 'worker', worker_id, 'started_at', started_at, "
            "'finished_at', %s, 'outcome', 'lost', 'rescued_by', %s, "
            "'error', json_object('class', 'django_jobs.exceptions.WorkerLost', "
            "'message', %s, 'traceback', '')))"
        )
    select = (
        f"SELECT j.id FROM {TABLE} AS j WHERE j.status = '{running}' AND ("
        f"(j.started_at < %s AND NOT EXISTS (SELECT 1 FROM {workers} AS w "
        f"WHERE w.worker_id = j.worker_id AND w.last_heartbeat >= %s)) {own}) {lock}"
    )
    new_status = (
        f"CASE WHEN stop_requested_at IS NOT NULL THEN '{JobStatus.STOPPED.value}' "
        f"WHEN attempts >= max_attempts THEN '{JobStatus.DEAD.value}' "
        f"ELSE '{JobStatus.RETRYING.value}' END"
    )
    finished = (
        f"CASE WHEN stop_requested_at IS NOT NULL OR attempts >= max_attempts THEN %s ELSE NULL END"
    )
    params: list[Any] = [
        adapt(now), rescuer, message.split(": ", 1)[1],  # history entry
        adapt(now), adapt(now),  # finished_at, run_at
        message,
        adapt(stale_before), adapt(stale_before), *worker_ids,
    ]
    sql = (
        f"UPDATE {TABLE} SET history = {entry}, status = {new_status}, finished_at = {finished}, "
        f"run_at = %s, worker_id = '', last_error = %s "
        f"WHERE id IN ({select}) AND status = '{running}' RETURNING id, name, status"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
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
    schedules = Schedule._meta.db_table
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


def stop_requested(using: str, job_ids: Sequence[int]) -> list[int]:
    """Which of these running jobs someone asked to stop."""
    if not job_ids:
        return []
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {TABLE} WHERE id IN {_in(job_ids)} AND stop_requested_at IS NOT NULL",
            list(job_ids),
        )
        return [r[0] for r in cursor.fetchall()]


def notify(queue: str, using: str | None = None) -> None:
    """Wake idle workers serving ``queue`` (at commit, when inside a transaction)."""
    from .conf import jobs_settings

    using = using or jobs_settings.DATABASE
    if is_postgres(using):
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, queue])


def paused(using: str) -> tuple[list[str], list[str]]:
    """The paused queues and job names (a tiny table, read on each claim loop)."""
    from .models import Pause

    queues: list[str] = []
    names: list[str] = []
    for kind, value in Pause.objects.using(using).values_list("kind", "value"):
        (queues if kind == Pause.Kind.QUEUE else names).append(value)
    return queues, names


def mark_unregistered(using: str, rows: Iterable[dict[str, Any]], worker_id: str, now: datetime) -> None:
    """Kill claimed rows that name no registered job: they can never run in this codebase."""
    from .registry import registry

    known = ", ".join(registry.names()[:20]) or "none"
    for row in rows:
        message = (
            f"JobNotRegistered: no job named {row['name']!r} is registered in worker {worker_id} "
            f"(registered: {known}). Deploy the code that defines it, then retry this job."
        )
        record_outcome(
            using,
            job_id=row["id"],
            attempt=row["attempt"],
            worker_id=worker_id,
            status=JobStatus.DEAD,
            finished_at=now,
            last_error=message,
            history_entry={
                "attempt": row["attempt"],
                "worker": worker_id,
                "started_at": now.isoformat(),
                "finished_at": now.isoformat(),
                "outcome": "dead",
                "error": {
                    "class": "django_jobs.exceptions.JobNotRegistered",
                    "message": message,
                    "traceback": "",
                },
            },
        )
