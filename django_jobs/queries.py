"""Every hand-written SQL statement of the job table, each with why it is shaped so.

The ORM would need several round trips (or a table lock) for what each of these does in one
statement. PostgreSQL is the production database; SQLite gets equivalent statements without
SKIP LOCKED (SQLite serialises writers, so one statement is already atomic there).
"""

from __future__ import annotations

import json
import math
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from django.db import connections, transaction

from .conf import jobs_settings

from .models import FINISHED_STATUSES, READY_STATUSES, Job, JobStatus, Schedule, Worker

TABLE = Job._meta.db_table
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

# Columns written by insert_columns(): every concrete field but the serial id, as (attname, field).
INSERT_FIELDS = [(f.attname, f) for f in Job._meta.concrete_fields if f.column != "id"]
_COLUMNS = {attname: field.column for attname, field in INSERT_FIELDS}


def _in(values: Sequence[Any]) -> str:
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def _ready_sql() -> str:
    # Spelled exactly like the partial index's predicate so the planner can prove it applies.
    return "status IN (" + ", ".join(f"'{s.value}'" for s in READY_STATUSES) + ")"


def is_postgres(using: str) -> bool:
    return connections[using].vendor == "postgresql"


def _json_text(value: Any) -> str:
    # Django registers a text loader for jsonb; a backend without one hands back the value.
    return value if isinstance(value, str) else json.dumps(value)


def _dump_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


# Session settings for the connection a worker claims on (its main loop's). The claim must walk
# the ready index in claim order and stop after LIMIT rows, whatever the statistics say: with
# stale ones (a burst of enqueues before autoanalyze) the planner picks a bitmap scan that reads
# every ready row and sorts them, and a prepared statement's generic plan, which can't see its
# parameter values, estimates one matching row and picks a sequential scan and a sort (8 ms per
# claim at 20,000 queued rows). With bitmap scans, sequential scans and sorts priced out, the only
# plan left for the claim is the index walk, for an empty table as for a million rows, so the
# generic plan is safe, and forcing it saves planning the claim on every round trip (0.5-1 ms,
# more than executing it). These settings only price plans; the worker's other queries (rescue,
# pruning, counters, schedules) have indexes to use or touch small tables. But a query that can
# only scan a table sequentially (the worker table, a dozen rows) now carries the penalty's
# astronomical cost, which would set off JIT compilation (100+ ms for a two-row DELETE) and make
# parallel plans look worth it: JIT and parallel workers are off for this connection, which only
# ever runs django_jobs' own short statements (jobs run in children, on their own connections).
_WORKER_SESSION = (
    "SELECT set_config('enable_bitmapscan', 'off', false), set_config('enable_seqscan', 'off', false), "
    "set_config('enable_sort', 'off', false), set_config('plan_cache_mode', 'force_generic_plan', false), "
    "set_config('jit', 'off', false), set_config('max_parallel_workers_per_gather', '0', false)"
)
_ONLY_EXPLICIT = 2**31 - 1  # a psycopg prepare_threshold that only prepare=True reaches
_TUPLES_OK = 2  # psycopg.pq.ExecStatus.TUPLES_OK: the statement returned rows
_tuned: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _pg(
    using: str, sql: str, params: Any, *, prepare: bool = True, worker: bool = False
) -> list[tuple[Any, ...]]:
    """Run a statement on PostgreSQL through a server-side-binding cursor and return its rows.

    Django's own cursors bind parameters client-side, so PostgreSQL parses and plans every
    statement again; the hot statements here are fixed texts, prepared once per connection
    (``PREPARE_STATEMENTS``; the claim is still planned per run, see _WORKER_SESSION). The
    statement runs on Django's connection, so it is part of the caller's transaction, raises
    Django's database errors, and shows up in ``connection.queries`` (debug toolbar, tests).
    """
    import psycopg

    wrapper = connections[using]
    wrapper.ensure_connection()
    wrapper.validate_no_broken_transaction()
    logged = wrapper.queries_logged
    started = time.monotonic() if logged else 0.0
    with wrapper.wrap_database_errors:
        # Behind a transaction-pooling PgBouncer (LISTEN_NOTIFY off) a session setting would leak
        # to other clients' sessions, so it is skipped there.
        if worker and jobs_settings.LISTEN_NOTIFY and wrapper.connection not in _tuned:
            wrapper.connection.execute(_WORKER_SESSION)
            if not wrapper.in_atomic_block:  # a rollback would undo the settings (tests do that)
                _tuned.add(wrapper.connection)
        prepare = prepare and bool(jobs_settings.PREPARE_STATEMENTS)
        if prepare and wrapper.connection.prepare_threshold is None:
            # Django opens connections with prepare_threshold=None, which makes psycopg ignore
            # prepare=True too. A threshold no statement reaches keeps everything else unprepared
            # (Django's client-side cursors never prepare anyway) and lets ours through.
            wrapper.connection.prepare_threshold = _ONLY_EXPLICIT
        with psycopg.Cursor(wrapper.connection) as cursor:
            cursor.execute(sql, params, prepare=prepare)
            # (pgresult's status, not cursor.description, which builds a Column per field.)
            result = cursor.pgresult
            rows = cursor.fetchall() if result is not None and result.status == _TUPLES_OK else []
    if logged:
        wrapper.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows


# Spelled, with " AND unique_key IS NOT NULL" after it, exactly as Django writes the partial unique
# index's predicate: SQLite only matches an ON CONFLICT target to an index with the same WHERE.
_ACTIVE_SQL = "status IN (" + ", ".join(
    f"'{s.value}'" for s in (JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.RUNNING)
) + ")"


def _is_json(field: Any) -> bool:
    return field.get_internal_type() == "JSONField"


def json_text(field: Any, value: Any) -> Any:
    """The value insert_columns() expects for ``field``: JSON text for JSON fields."""
    return _dump_json(value) if _is_json(field) else value


def _insert_sql_pg(connection: Any, varying: tuple[str, ...], on_conflict: bool) -> str:
    # One fixed text per shape, prepared once per connection. Values every row shares (for
    # enqueue_many: all but the arguments) are single parameters; the others arrive as one array
    # per column and unnest() turns them back into rows, so a 10,000-job enqueue_many sends two
    # arrays and a few scalars, not 200,000 parameters. A single row (enqueue()) is a VALUES list.
    columns, values, arrays = [], [], []
    for attname, field in INSERT_FIELDS:
        columns.append(field.column)
        cast = "jsonb" if _is_json(field) else field.db_type(connection)
        if attname in varying:
            arrays.append((field.column, "text" if _is_json(field) else cast))
            values.append(f"u.{field.column}::{cast}")
        else:
            values.append(f"%({attname})s::{cast}")
    if arrays:
        source = (
            f"SELECT {', '.join(values)} FROM unnest("
            + ", ".join(f"%({column}__all)b::{cast}[]" for column, cast in arrays)
            + f") AS u({', '.join(column for column, _ in arrays)})"
        )
    else:
        source = f"VALUES ({', '.join(values)})"
    # Without a unique_key no row can conflict (NULL keys never do), and a plain INSERT skips
    # the speculative insertion ON CONFLICT costs.
    conflict = (
        f" ON CONFLICT (unique_key) WHERE {_ACTIVE_SQL} AND unique_key IS NOT NULL DO NOTHING"
        if on_conflict else ""
    )
    insert = f"INSERT INTO {TABLE} ({', '.join(columns)}) {source}{conflict} RETURNING id, unique_key, queue, run_at"
    # NOTIFY is transactional: idle workers wake when the caller's transaction commits, never for
    # a rolled-back enqueue. The payload (see wakeup_payload) is the queue and the epoch seconds at
    # which the earliest job is due when that is later (0 otherwise), so idle workers can wake at
    # that moment instead of at their next poll.
    # The notify is an uncorrelated sub-select of the outer SELECT, which PostgreSQL evaluates
    # once (an InitPlan): one pg_notify per queue, not per row, and none if nothing was inserted.
    if "queue" not in varying and "run_at" not in varying:
        # Every row has the same queue and run_at: notify with the parameters themselves.
        due = "CASE WHEN %(run_at)s::timestamptz > now() THEN extract(epoch FROM %(run_at)s::timestamptz)::text ELSE '0' END"
        return (
            f"WITH inserted AS ({insert}) "
            f"SELECT id, unique_key, (SELECT pg_notify('{CHANNEL}', %(queue)s::text || ' ' || {due})) FROM inserted"
        )
    due = "CASE WHEN q.due > now() THEN extract(epoch FROM q.due)::text ELSE '0' END"
    return (
        f"WITH inserted AS ({insert}), "
        f"notified AS (SELECT pg_notify('{CHANNEL}', q.queue || ' ' || {due}) "
        f"FROM (SELECT queue, min(run_at) AS due FROM inserted GROUP BY queue) AS q) "
        f"SELECT id, unique_key, (SELECT count(*) FROM notified) FROM inserted"
    )


_INSERT_PG: dict[tuple[tuple[str, ...], bool], str] = {}


def insert_columns(
    using: str, shared: dict[str, Any], varying: dict[str, list[Any]], count: int
) -> list[int | None]:
    """INSERT ``count`` jobs and return each one's id.

    Every column of INSERT_FIELDS is in ``shared`` (one value for all rows) or in ``varying``
    (a list of ``count`` values); JSON columns are given as JSON text. A job whose unique_key
    already belongs to an active job (or to an earlier job of the same batch) is not inserted
    (ON CONFLICT … DO NOTHING against the partial unique index) and gets None: the caller then
    looks up the existing one.
    """
    connection = connections[using]
    keys = varying["unique_key"] if "unique_key" in varying else [shared["unique_key"]] * count
    if connection.vendor == "postgresql":
        if count > 1 and not varying:
            raise ValueError("several rows need at least one varying column")
        shape = (tuple(a for a, _ in INSERT_FIELDS if a in varying), any(k is not None for k in keys))
        sql = _INSERT_PG.get(shape)
        if sql is None:
            sql = _INSERT_PG[shape] = _insert_sql_pg(connection, *shape)
        params = dict(shared)
        for attname, values in varying.items():
            params[f"{_COLUMNS[attname]}__all"] = values
        returned = _pg(using, sql, params)
    else:
        returned = []
        for start in range(0, count, 500):  # SQLite caps the number of parameters
            chunk = {k: v[start : start + 500] for k, v in varying.items()}
            returned.extend(_insert_sqlite(using, shared, chunk, min(500, count - start)))
    # Rows come back in input order; walk both lists to pair them up.
    ids: list[int | None] = []
    position = 0
    seen_keys: set[str] = set()
    for key in keys:
        match = position < len(returned) and (
            key is None or (returned[position][1] == key and key not in seen_keys)
        )
        if match:
            ids.append(returned[position][0])
            position += 1
            if key is not None:
                seen_keys.add(key)
        else:
            ids.append(None)
    return ids


def insert_jobs(jobs: list[Job], using: str) -> list[bool]:
    """INSERT unsaved Job instances in one statement, set their ids, return which were inserted."""
    rows = [{attname: json_text(field, getattr(job, attname)) for attname, field in INSERT_FIELDS} for job in jobs]
    if len(jobs) == 1:
        shared, varying = rows[0], {}
    else:
        shared, varying = {}, {attname: [row[attname] for row in rows] for attname, _ in INSERT_FIELDS}
    inserted = []
    for job, job_id in zip(jobs, insert_columns(using, shared, varying, len(jobs))):
        if job_id is not None:
            job.id = job_id
            job._state.adding = False
            job._state.db = using
        inserted.append(job_id is not None)
    return inserted


def _insert_sqlite(
    using: str, shared: dict[str, Any], varying: dict[str, list[Any]], count: int
) -> list[tuple[Any, ...]]:
    connection = connections[using]
    names = ", ".join(field.column for _, field in INSERT_FIELDS)
    row = "(" + ", ".join(["%s"] * len(INSERT_FIELDS)) + ")"
    params: list[Any] = []
    for i in range(count):
        for attname, field in INSERT_FIELDS:
            value = varying[attname][i] if attname in varying else shared[attname]
            params.append(value if _is_json(field) else field.get_db_prep_save(value, connection))
    sql = (
        f"INSERT INTO {TABLE} ({names}) VALUES {', '.join([row] * count)} "
        f"ON CONFLICT (unique_key) WHERE {_ACTIVE_SQL} AND unique_key IS NOT NULL DO NOTHING "
        f"RETURNING id, unique_key, queue, run_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_CLAIM_COLUMNS = ("id", "name", "args", "kwargs", "queue", "attempts", "max_attempts", "timeout")


def _claimable_sql(filter_queues: bool) -> str:
    # Walks django_jobs_ready_idx in claim order (priority DESC, run_at, id). FOR UPDATE SKIP
    # LOCKED lets concurrent workers pass over rows another worker is claiming instead of waiting
    # on its lock. As a CTE it keeps LIMIT attached to the locking SELECT (an ``id IN (subquery)``
    # can be planned as a join that runs the subquery more than once).
    queue_filter = "AND queue = ANY(%(queues)b::text[]) " if filter_queues else ""
    return (
        f"SELECT id FROM {TABLE} WHERE {_ready_sql()} AND run_at <= %(now)s {queue_filter}"
        f"AND queue <> ALL(%(paused_queues)b::text[]) AND name <> ALL(%(paused_names)b::text[]) "
        f"ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
    )


# Marks the claimable rows running in the same statement, so no claimed row is ever seen as
# queued, and no transaction stays open while the job runs.
_CLAIM_UPDATE = (
    f"UPDATE {TABLE} SET status = '{JobStatus.RUNNING.value}', attempts = attempts + 1, "
    f"started_at = %(now)s, worker_id = %(worker_id)s, stop_requested_at = NULL "
    f"FROM claimable WHERE {TABLE}.id = claimable.id "
    f"RETURNING {', '.join(f'{TABLE}.{c}' for c in _CLAIM_COLUMNS)}"
)


def _claim_sql_pg(filter_queues: bool) -> str:
    return f"WITH claimable AS ({_claimable_sql(filter_queues)}) {_CLAIM_UPDATE}"


_CLAIM_PG = {True: _claim_sql_pg(True), False: _claim_sql_pg(False)}


def claim_sql(using: str, *, filter_queues: bool = False) -> str:
    """The claim statement's text (for EXPLAIN in tests and the benchmark)."""
    return _CLAIM_PG[filter_queues]


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

    ``attempts`` goes up here, at the claim: it is the fencing token every outcome write checks.
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        rows = _pg(using, _CLAIM_PG[bool(queues)], worker=True, params={
            "now": now, "queues": list(queues), "paused_queues": list(paused_queues),
            "paused_names": list(paused_names), "limit": limit, "worker_id": worker_id,
        })
    else:
        rows = _claim_sqlite(using, worker_id=worker_id, limit=limit, now=now, queues=queues,
                             paused_queues=paused_queues, paused_names=paused_names)
    return _claimed_rows(rows)


def _claimed_rows(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    # Arguments stay JSON text (one line: PostgreSQL's jsonb output has no newlines): the worker
    # splices them into the message for the child, which is the only process that needs them.
    return [
        {
            "id": r[0],
            "name": r[1],
            "args_json": _json_text(r[2]),
            "kwargs_json": _json_text(r[3]),
            "queue": r[4],
            "attempt": r[5],
            "max_attempts": r[6],
            "timeout": r[7],
        }
        for r in rows
    ]


def _claim_sqlite(
    using: str, *, worker_id: str, limit: int, now: datetime, queues: Sequence[str],
    paused_queues: Sequence[str], paused_names: Sequence[str],
) -> list[tuple[Any, ...]]:
    # SQLite has one writer at a time, so a single UPDATE … WHERE id IN (SELECT … LIMIT n) is
    # already atomic: no row can be claimed twice. (No SKIP LOCKED; one worker is the supported
    # setup for local development.)
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    filters = [_ready_sql(), "run_at <= %s"]
    params: list[Any] = [adapt(now)]
    for column, values, op in (("queue", queues, "IN"), ("queue", paused_queues, "NOT IN"),
                               ("name", paused_names, "NOT IN")):
        if values:
            filters.append(f"{column} {op} {_in(values)}")
            params.extend(values)
    select = f"SELECT id FROM {TABLE} WHERE {' AND '.join(filters)} ORDER BY priority DESC, run_at, id LIMIT %s"
    sql = (
        f"UPDATE {TABLE} SET status = '{JobStatus.RUNNING.value}', attempts = attempts + 1, "
        f"started_at = %s, worker_id = %s, stop_requested_at = NULL WHERE id IN ({select}) "
        f"RETURNING {', '.join(_CLAIM_COLUMNS)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(now), worker_id, *params, limit])
        return cursor.fetchall()


@dataclass
class OutcomeWrite:
    """One attempt's outcome as record_outcomes() writes it."""

    job_id: int
    attempt: int
    status: JobStatus
    ended_at: datetime
    history_entry: dict[str, Any]
    run_at: datetime | None = None
    set_result: bool = False
    result: Any = None
    last_error: str | None = None
    attempts_delta: int = 0
    max_attempts_delta: int = 0

    @property
    def finished_at(self) -> datetime | None:
        return self.ended_at if self.status in FINISHED_STATUSES else None


# Every outcome of a batch in one statement, one commit. Each row is fenced by the claim: the
# job must still be running *this* attempt for *this* worker, so a worker that was frozen while
# its job was rescued and claimed again updates nothing and can't overwrite the newer attempt.
# A stop request beats every other outcome, decided inside the statement so a request that
# lands while the outcome is written is never lost.
#
# The fence's values (status running, this worker's id) come in as arrays like the outcomes,
# though they are the same in every row. As join conditions they can't match the partial
# django_jobs_running_idx, whose statistics say it is empty (nothing is running when ANALYZE
# looks); compared with constants, the generic plan drove the update from that index and scanned
# the unnest once per running job: 8 ms for 100 outcomes. This way the only plan is one lookup
# by primary key per outcome.
_OUTCOME_UPDATE = (
    f"UPDATE {TABLE} AS j SET "
    f"status = CASE WHEN j.stop_requested_at IS NULL THEN v.status ELSE '{JobStatus.STOPPED.value}' END, "
    f"worker_id = '', "
    f"finished_at = CASE WHEN j.stop_requested_at IS NULL THEN v.finished_at ELSE v.ended_at END, "
    f"history = j.history || jsonb_build_array(v.entry::jsonb), "
    f"run_at = COALESCE(v.run_at, j.run_at), "
    f"result = CASE WHEN v.set_result THEN v.result::jsonb ELSE j.result END, "
    f"last_error = CASE WHEN j.stop_requested_at IS NOT NULL THEN 'stopped on request' "
    f"ELSE COALESCE(v.last_error, j.last_error) END, "
    f"attempts = j.attempts + CASE WHEN j.stop_requested_at IS NULL THEN v.attempts_delta ELSE 0 END, "
    f"max_attempts = j.max_attempts + v.max_attempts_delta "
    f"FROM unnest(%(o_id)b::bigint[], %(o_attempt)b::integer[], %(o_status)b::text[], "
    f"%(o_finished_at)b::timestamptz[], %(o_ended_at)b::timestamptz[], %(o_entry)b::text[], "
    f"%(o_run_at)b::timestamptz[], %(o_set_result)b::boolean[], %(o_result)b::text[], "
    f"%(o_last_error)b::text[], %(o_attempts_delta)b::integer[], %(o_max_attempts_delta)b::integer[], "
    f"%(o_fence_status)b::text[], %(o_fence_worker)b::text[]) "
    f"AS v(id, attempt, status, finished_at, ended_at, entry, run_at, set_result, result, last_error, "
    f"attempts_delta, max_attempts_delta, fence_status, fence_worker) "
    f"WHERE j.id = v.id AND j.status = v.fence_status AND j.attempts = v.attempt "
    f"AND j.worker_id = v.fence_worker "
    f"RETURNING j.id, j.status"
)


def _outcome_params(worker_id: str, outcomes: Sequence[OutcomeWrite]) -> dict[str, Any]:
    return {
        "worker_id": worker_id,
        "o_id": [o.job_id for o in outcomes],
        "o_attempt": [o.attempt for o in outcomes],
        "o_status": [o.status.value for o in outcomes],
        "o_finished_at": [o.finished_at for o in outcomes],
        "o_ended_at": [o.ended_at for o in outcomes],
        "o_entry": [json.dumps(o.history_entry) for o in outcomes],
        "o_run_at": [o.run_at for o in outcomes],
        "o_set_result": [o.set_result for o in outcomes],
        "o_result": [_dump_json(o.result) if o.set_result else None for o in outcomes],
        "o_last_error": [o.last_error for o in outcomes],
        "o_attempts_delta": [o.attempts_delta for o in outcomes],
        "o_max_attempts_delta": [o.max_attempts_delta for o in outcomes],
        "o_fence_status": [JobStatus.RUNNING.value] * len(outcomes),
        "o_fence_worker": [worker_id] * len(outcomes),
    }


# A worker's round trip: the outcomes of the jobs that finished since the last one, and the claim
# of the next jobs, in one statement and one commit. Both UPDATEs see the same snapshot and touch
# disjoint rows (outcomes only running rows, the claim only queued or retrying ones).
def _sync_sql_pg(filter_queues: bool) -> str:
    return (
        f"WITH done AS ({_OUTCOME_UPDATE}), "
        f"claimable AS ({_claimable_sql(filter_queues)}), "
        f"claimed AS ({_CLAIM_UPDATE}) "
        f"SELECT 'done', id, status::text, NULL::text, NULL::text, NULL::text, NULL::integer, "
        f"NULL::integer, NULL::double precision FROM done "
        f"UNION ALL SELECT 'claimed', id, name::text, args::text, kwargs::text, queue::text, attempts, "
        f"max_attempts, timeout FROM claimed"
    )


_SYNC_PG = {True: _sync_sql_pg(True), False: _sync_sql_pg(False)}


def sync_sql(*, filter_queues: bool = False) -> str:
    """The text of the statement a worker runs each round trip (for EXPLAIN)."""
    return _SYNC_PG[filter_queues]


def sync(
    using: str,
    *,
    worker_id: str,
    outcomes: Sequence[OutcomeWrite],
    limit: int,
    now: datetime,
    queues: Sequence[str] = (),
    paused_queues: Sequence[str] = (),
    paused_names: Sequence[str] = (),
) -> tuple[dict[int, str], list[dict[str, Any]]]:
    """Write ``outcomes`` and claim up to ``limit`` jobs in one round trip.

    Returns what record_outcomes() and claim() would: {job id: status written} and the claimed rows.
    """
    if connections[using].vendor != "postgresql":
        claimed = claim(using, worker_id=worker_id, limit=limit, now=now, queues=queues,
                        paused_queues=paused_queues, paused_names=paused_names) if limit > 0 else []
        return record_outcomes(using, worker_id, outcomes), claimed
    params = _outcome_params(worker_id, outcomes)
    params.update(now=now, queues=list(queues), paused_queues=list(paused_queues),
                  paused_names=list(paused_names), limit=max(limit, 0))
    written: dict[int, str] = {}
    rows: list[tuple[Any, ...]] = []
    for row in _pg(using, _SYNC_PG[bool(queues)], params, worker=True):
        if row[0] == "done":
            written[row[1]] = row[2]
        else:
            rows.append(row[1:])
    return written, _claimed_rows(rows)


def record_outcomes(using: str, worker_id: str, outcomes: Sequence[OutcomeWrite]) -> dict[int, str]:
    """Write attempts' outcomes, fenced by their claims; return {job id: status written}.

    A job missing from the result had lost its claim (it was rescued), and nothing was written.
    """
    if not outcomes:
        return {}
    if connections[using].vendor != "postgresql":
        return _record_outcomes_sqlite(using, worker_id, outcomes)
    return dict(_pg(using, _OUTCOME_UPDATE, _outcome_params(worker_id, outcomes)))


def _record_outcomes_sqlite(using: str, worker_id: str, outcomes: Sequence[OutcomeWrite]) -> dict[int, str]:
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    sql = (
        f"UPDATE {TABLE} SET "
        f"status = CASE WHEN stop_requested_at IS NULL THEN %s ELSE '{JobStatus.STOPPED.value}' END, "
        f"worker_id = '', "
        f"finished_at = CASE WHEN stop_requested_at IS NULL THEN %s ELSE %s END, "
        f"history = json_insert(history, '$[#]', json(%s)), "
        f"run_at = COALESCE(%s, run_at), "
        f"result = CASE WHEN %s THEN %s ELSE result END, "
        f"last_error = CASE WHEN stop_requested_at IS NOT NULL THEN 'stopped on request' "
        f"ELSE COALESCE(%s, last_error) END, "
        f"attempts = attempts + CASE WHEN stop_requested_at IS NULL THEN %s ELSE 0 END, "
        f"max_attempts = max_attempts + %s "
        f"WHERE id = %s AND status = '{JobStatus.RUNNING.value}' AND attempts = %s AND worker_id = %s "
        f"RETURNING id, status"
    )
    written: dict[int, str] = {}
    with connection.cursor() as cursor:
        for o in outcomes:
            cursor.execute(sql, [
                o.status.value, adapt(o.finished_at), adapt(o.ended_at), json.dumps(o.history_entry),
                adapt(o.run_at), o.set_result, _dump_json(o.result) if o.set_result else None,
                o.last_error, o.attempts_delta, o.max_attempts_delta, o.job_id, o.attempt, worker_id,
            ])
            row = cursor.fetchone()
            if row:
                written[row[0]] = row[1]
    return written


def record_outcome(using: str, *, worker_id: str, **fields: Any) -> str | None:
    """Write one outcome (see record_outcomes); return its status, or None if the claim was lost."""
    outcome = OutcomeWrite(**fields)
    return record_outcomes(using, worker_id, [outcome]).get(outcome.job_id)


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
    workers = Worker._meta.db_table
    running = JobStatus.RUNNING.value
    own = f"OR j.worker_id IN {_in(worker_ids)}" if worker_ids else ""
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


def stop_requested(using: str, job_ids: Sequence[int], *, lock_timeout: float | None = None) -> list[int]:
    """Which of these running jobs someone asked to stop.

    With ``lock_timeout`` (seconds), give up with an error is_lock_timeout() recognises rather
    than wait longer for a lock on the job table (the heartbeat must not hang behind one).
    """
    if not job_ids:
        return []
    sql = f"SELECT id FROM {TABLE} WHERE id IN {_in(job_ids)} AND stop_requested_at IS NOT NULL"
    connection = connections[using]
    if lock_timeout is None or connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, list(job_ids))
            return [r[0] for r in cursor.fetchall()]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(lock_timeout * 1000)}ms"])
        cursor.execute(sql, list(job_ids))
        return [r[0] for r in cursor.fetchall()]


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether a database error is PostgreSQL's lock_timeout running out (SQLSTATE 55P03)."""
    return getattr(exc.__cause__, "sqlstate", None) == "55P03"


def waiting_on_lock(using: str, pid: int) -> bool:
    """Whether the server process ``pid`` is running a statement that waits for a lock.

    Anything else (idle, gone, or busy some other way) means the statement its client waits for
    may never answer: a lost reply, not a late one.
    """
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "active" and row[1] == "Lock"


def hand_back_unheld(
    using: str, worker_id: str, held: Iterable[tuple[int, int]], now: datetime
) -> list[int]:
    """Queue again, without spending an attempt, the running rows claimed for ``worker_id`` whose
    (id, attempt) it doesn't hold: a claim committed them but its reply never reached the worker.

    Only that worker claims rows under its id, and it holds every row it received until the
    outcome is written, so these never started. One whose stop was requested meanwhile ends
    ``stopped`` instead (the next claim would clear the request). Returns their ids.
    """
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    running, queued, stopped = JobStatus.RUNNING.value, JobStatus.QUEUED.value, JobStatus.STOPPED.value
    held = sorted(held)
    if connection.vendor == "postgresql":
        entry = (
            "history || jsonb_build_array(jsonb_build_object('attempt', attempts, 'worker', worker_id, "
            "'started_at', started_at, 'finished_at', CAST(%s AS timestamptz), 'outcome', 'handed_back', "
            "'reason', 'the claim reached the database but its reply never reached the worker'))"
        )
        unheld = (
            "NOT EXISTS (SELECT 1 FROM unnest(%s::bigint[], %s::integer[]) AS h(id, attempt) "
            f"WHERE h.id = {TABLE}.id AND h.attempt = {TABLE}.attempts)"
        )
        held_params: list[Any] = [[h[0] for h in held], [h[1] for h in held]]
    else:
        entry = (
            "json_insert(history, '$[#]', json_object('attempt', attempts, 'worker', worker_id, "
            "'started_at', started_at, 'finished_at', %s, 'outcome', 'handed_back', "
            "'reason', 'the claim reached the database but its reply never reached the worker'))"
        )
        pairs = " OR ".join(["(id = %s AND attempts = %s)"] * len(held))
        unheld = f"NOT ({pairs})" if held else "1 = 1"
        held_params = [value for pair in held for value in pair]
    sql = (
        f"UPDATE {TABLE} SET "
        f"status = CASE WHEN stop_requested_at IS NULL THEN '{queued}' ELSE '{stopped}' END, "
        f"finished_at = CASE WHEN stop_requested_at IS NULL THEN NULL ELSE %s END, "
        f"last_error = CASE WHEN stop_requested_at IS NULL THEN last_error ELSE 'stopped on request' END, "
        f"attempts = attempts - 1, worker_id = '', run_at = %s, history = {entry} "
        f"WHERE status = '{running}' AND worker_id = %s AND {unheld} RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [adapt(now), adapt(now), adapt(now), worker_id, *held_params])
        return [r[0] for r in cursor.fetchall()]


def outcomes_written(using: str, worker_id: str, attempts: Sequence[tuple[int, int]]) -> dict[int, str]:
    """Of these (job id, attempt) pairs, the ones whose outcome this worker already wrote (the
    last history entry is its own for that attempt, not a rescuer's): {job id: status}.

    For outcomes re-sent after a lost reply: the fence refuses the second write, which doesn't
    mean someone else took the job.
    """
    if not attempts or connections[using].vendor != "postgresql":
        return {}
    sql = (
        f"SELECT j.id, j.status FROM {TABLE} AS j "
        f"JOIN unnest(%s::bigint[], %s::integer[]) AS v(id, attempt) ON j.id = v.id "
        f"WHERE j.history -> -1 ->> 'worker' = %s AND (j.history -> -1 ->> 'attempt')::integer = v.attempt "
        f"AND NOT (j.history -> -1 ? 'rescued_by')"
    )
    with connections[using].cursor() as cursor:
        cursor.execute(sql, [[a[0] for a in attempts], [a[1] for a in attempts], worker_id])
        return {r[0]: r[1] for r in cursor.fetchall()}


def notify(queue: str, using: str | None = None, *, control: bool = False) -> None:
    """Wake idle workers serving ``queue`` (at commit, when inside a transaction).

    ``control=True`` sends ``queue`` as it is: a control message (models.CONTROL_*) for every worker.
    """
    from .conf import jobs_settings

    using = using or jobs_settings.DATABASE
    if is_postgres(using):
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, queue if control else wakeup_payload(queue)])


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
            ended_at=now,
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
