"""Inserting jobs: one statement for one job or ten thousand, with the wake-up in it; and the
one-statement replace of a waiting job that holds the new job's unique_key."""

from __future__ import annotations

from typing import Any

from django.db import connections

from ..models import READY_STATUSES, Job
from .channel import wakeup_sql
from .connection import dump_json, run_prepared
from .tables import KEY_HOLDERS_SQL, READY_SQL, TABLE, status_in, unique_target

# Columns written by insert_columns(): every concrete field but the serial id, as (attname, field).
INSERT_FIELDS = [(f.attname, f) for f in Job._meta.concrete_fields if f.column != "id"]
_COLUMNS = {attname: field.column for attname, field in INSERT_FIELDS}
_NAMES = tuple(attname for attname, _ in INSERT_FIELDS)


def _is_json(field: Any) -> bool:
    return field.get_internal_type() == "JSONField"


def json_text(field: Any, value: Any) -> Any:
    """The value insert_columns() expects for ``field``: JSON text for JSON fields."""
    return dump_json(value) if _is_json(field) else value


def _rows_sql(connection: Any, varying: tuple[str, ...], nulls: tuple[str, ...] = ()) -> tuple[list[str], str]:
    """The column list and the rows' source (VALUES or a SELECT over unnest) of an INSERT; the
    ``nulls`` columns are NULL in every row."""
    # One fixed text per shape, prepared once per connection. Values every row shares (for
    # enqueue_many: all but the arguments) are single parameters; the others arrive as one array
    # per column and unnest() turns them back into rows, so a 10,000-job enqueue_many sends two
    # arrays and a few scalars, not 200,000 parameters. A single row (enqueue()) is a VALUES list.
    columns, values, arrays = [], [], []
    for attname, field in INSERT_FIELDS:
        columns.append(field.column)
        cast = "jsonb" if _is_json(field) else field.db_type(connection)
        if attname in nulls:
            values.append("NULL")
        elif attname in varying:
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
    return columns, source


def _insert_sql_pg(connection: Any, varying: tuple[str, ...], scope: str, nulls: tuple[str, ...]) -> str:
    columns, source = _rows_sql(connection, varying, nulls)
    # Without a unique_key no row can conflict (NULL keys never do), and a plain INSERT skips
    # the speculative insertion ON CONFLICT costs. With one, the rows' scope names the index.
    conflict = f" ON CONFLICT {unique_target(scope)} DO NOTHING" if scope else ""
    insert = f"INSERT INTO {TABLE} ({', '.join(columns)}) {source}{conflict} RETURNING id, unique_key, queue, run_at"
    # NOTIFY is transactional: idle workers wake when the caller's transaction commits, never for
    # a rolled-back enqueue. The payload (see wakeup_payload) is the queue and the epoch seconds at
    # which the earliest job is due when that is later (0 otherwise), so idle workers can wake at
    # that moment instead of at their next poll.
    # The notify is an uncorrelated sub-select of the outer SELECT, which PostgreSQL evaluates
    # once (an InitPlan): one pg_notify per queue, not per row, and none if nothing was inserted.
    if "queue" not in varying and "run_at" not in varying:
        # Every row has the same queue and run_at: notify with the parameters themselves.
        notify = wakeup_sql("%(queue)s::text", "%(run_at)s::timestamptz")
        return f"WITH inserted AS ({insert}) SELECT id, unique_key, (SELECT {notify}) FROM inserted"
    return (
        f"WITH inserted AS ({insert}), "
        f"notified AS (SELECT {wakeup_sql('q.queue', 'q.due')} "
        f"FROM (SELECT queue, min(run_at) AS due FROM inserted GROUP BY queue) AS q) "
        f"SELECT id, unique_key, (SELECT count(*) FROM notified) FROM inserted"
    )


_INSERT_PG: dict[tuple[tuple[str, ...], str, tuple[str, ...]], str] = {}


def insert_columns(
    using: str, shared: dict[str, Any], varying: dict[str, list[Any]], count: int
) -> list[int | None]:
    """INSERT ``count`` jobs and return each one's id.

    Every column of INSERT_FIELDS is in ``shared`` (one value for all rows) or in ``varying``
    (a list of ``count`` values); JSON columns are given as JSON text. A job whose unique_key
    another job already holds in its scope (or an earlier job of the same batch) is not inserted
    (ON CONFLICT … DO NOTHING against that scope's partial unique index) and gets None: the
    caller then looks up the existing one. The jobs with a key must share one ``unique_while``.
    """
    connection = connections[using]
    keys = varying["unique_key"] if "unique_key" in varying else [shared["unique_key"]] * count
    scope = _scope(shared, varying, keys)
    if connection.vendor == "postgresql":
        if count > 1 and not varying:
            raise ValueError("several rows need at least one varying column")
        # The columns all rows leave NULL (most of a plain job's: its keys, its schedule, its
        # result…) are written as NULL in the text rather than sent: a job has 33 columns and
        # enqueue() sends about half of them. A few shapes, each prepared once per connection.
        shape = (
            tuple(a for a in _NAMES if a in varying), scope,
            tuple(a for a in _NAMES if a not in varying and shared[a] is None),
        )
        sql = _INSERT_PG.get(shape)
        if sql is None:
            sql = _INSERT_PG[shape] = _insert_sql_pg(connection, *shape)
        params = dict(shared)
        for attname, values in varying.items():
            params[f"{_COLUMNS[attname]}__all"] = values
        returned = run_prepared(connection, sql, params)
    else:
        returned = []
        for start in range(0, count, 500):  # SQLite caps the number of parameters
            chunk = {k: v[start : start + 500] for k, v in varying.items()}
            returned.extend(_insert_sqlite(using, shared, chunk, min(500, count - start), scope))
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


def _scope(shared: dict[str, Any], varying: dict[str, list[Any]], keys: list[str | None]) -> str:
    """The unique_while of the rows that have a unique_key ("" when none has one)."""
    if all(key is None for key in keys):
        return ""
    if "unique_while" not in varying:
        return str(shared["unique_while"])
    scopes = {scope for scope, key in zip(varying["unique_while"], keys) if key is not None}
    if len(scopes) > 1:
        # One statement has one ON CONFLICT target, the index of one scope.
        raise ValueError(f"jobs with a unique_key inserted together need one unique_while, not {sorted(scopes)}")
    return str(scopes.pop())


# Replacing a waiting holder (using(on_duplicate="replace") or debounce=): one statement, so
# that no enqueue can slip between finding the holder and changing it, and nothing raises in
# the caller's transaction. The holder takes this enqueue's arguments, run_at and flow-control
# keys (computed from the arguments); with debounce the later of the two run_at, so that a
# burst runs debounce after its last enqueue in whatever order the enqueues reach the row.
# Only a waiting holder: one that started ran with the arguments it had (and is returned
# unchanged, as without replace). Nor a holder in another sequence, which it would overtake.
# A holder claimed meanwhile is seen as it is after the claim commits (READ COMMITTED re-checks
# the conflict), so a claim and a replace never both win. xmax = 0 tells an inserted row from
# an updated one. The wake-up goes out for either: a replace can make the job due sooner.
def _upsert_sql_pg(connection: Any, scope: str, debounce: bool) -> str:
    columns, source = _rows_sql(connection, ())
    run_at = "GREATEST(j.run_at, EXCLUDED.run_at)" if debounce else "EXCLUDED.run_at"
    return (
        f"WITH written AS (INSERT INTO {TABLE} AS j ({', '.join(columns)}) {source} "
        f"ON CONFLICT {unique_target(scope)} DO UPDATE SET args = EXCLUDED.args, "
        f"kwargs = EXCLUDED.kwargs, run_at = {run_at}, concurrency_key = EXCLUDED.concurrency_key, "
        f"rate_key = EXCLUDED.rate_key "
        f"WHERE {status_in(READY_STATUSES, 'j.status')} AND j.sequence_key IS NOT DISTINCT FROM EXCLUDED.sequence_key "
        f"RETURNING j.id, j.queue, j.run_at, j.xmax = 0 AS inserted) "
        f"SELECT id, inserted, {wakeup_sql('queue', 'run_at')} FROM written"
    )


_UPSERT_PG: dict[tuple[str, bool], str] = {}


def upsert_row(using: str, row: dict[str, Any], *, debounce: bool) -> tuple[int, bool] | None:
    """INSERT one job with a unique_key, or replace the arguments of the waiting job holding it.

    ``row`` holds every column of INSERT_FIELDS (JSON as text). Returns (id, True) for a new
    job, (the holder's id, False) for a replaced one, and None when the holder wasn't replaced
    (it has started, or is in another sequence): the caller then looks it up.
    """
    scope = str(row["unique_while"])
    if connections[using].vendor != "postgresql":
        return _upsert_sqlite(using, row, scope, debounce)
    sql = _UPSERT_PG.get((scope, debounce))
    if sql is None:
        sql = _UPSERT_PG[scope, debounce] = _upsert_sql_pg(connections[using], scope, debounce)
    returned = run_prepared(using, sql, row)
    return (returned[0][0], returned[0][1]) if returned else None


# Serialises enqueues into one sequence until the enqueuing transaction ends (a transaction-level
# lock, so it works behind PgBouncer in transaction mode). Ids then follow commit order within the
# sequence. Its own lock space: the gated claim's sequence locks never wait on an enqueue.
LOCK_SEQUENCES = (
    "SELECT pg_advisory_xact_lock(hashtextextended('django_jobs:enqueue:' || k, 0)) "
    "FROM unnest(%s::text[]) AS k ORDER BY k"
)


def lock_sequences(using: str, keys: set[str]) -> None:
    """Take the enqueue locks of these sequences for the rest of the transaction (PostgreSQL; on
    SQLite the database's single writer already serialises enqueues)."""
    if keys and connections[using].vendor == "postgresql":
        with connections[using].cursor() as cursor:
            cursor.execute(LOCK_SEQUENCES, [sorted(keys)])


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
    using: str, shared: dict[str, Any], varying: dict[str, list[Any]], count: int, scope: str
) -> list[tuple[Any, ...]]:
    connection = connections[using]
    names = ", ".join(field.column for _, field in INSERT_FIELDS)
    row = "(" + ", ".join(["%s"] * len(INSERT_FIELDS)) + ")"
    params: list[Any] = []
    for i in range(count):
        for attname, field in INSERT_FIELDS:
            value = varying[attname][i] if attname in varying else shared[attname]
            params.append(value if _is_json(field) else field.get_db_prep_save(value, connection))
    conflict = f"ON CONFLICT {unique_target(scope)} DO NOTHING " if scope else ""
    sql = f"INSERT INTO {TABLE} ({names}) VALUES {', '.join([row] * count)} {conflict}RETURNING id, unique_key, queue, run_at"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _upsert_sqlite(using: str, row: dict[str, Any], scope: str, debounce: bool) -> tuple[int, bool] | None:
    # SQLite (one writer, the demo's database): the insert, then the replace as its own UPDATE.
    inserted = _insert_sqlite(using, row, {}, 1, scope)
    if inserted:
        return inserted[0][0], True
    connection = connections[using]
    run_at = Job._meta.get_field("run_at").get_db_prep_save(row["run_at"], connection)
    sql = (
        f"UPDATE {TABLE} SET args = %s, kwargs = %s, run_at = {'max(run_at, %s)' if debounce else '%s'}, "
        f"concurrency_key = %s, rate_key = %s "
        f"WHERE unique_key = %s AND {KEY_HOLDERS_SQL[scope]} AND {READY_SQL} AND sequence_key IS %s "
        f"RETURNING id"
    )
    params = [row["args"], row["kwargs"], run_at, row["concurrency_key"], row["rate_key"], row["unique_key"],
              row["sequence_key"]]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        updated = cursor.fetchone()
    return (updated[0], False) if updated else None
