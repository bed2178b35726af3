"""The bench database's tables: reset and seed them, read their plans, sizes and counters.

Everything here runs in the harness process on Django's connection (autocommit).
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.utils import timezone

try:
    from django_jobs.db import claims
    from django_jobs.db.connection import WORKER_SESSION
except ImportError:  # measuring (--at) a commit from before the db/ package
    from django_jobs import queries as claims  # type: ignore[no-redef]

    WORKER_SESSION = claims._WORKER_SESSION  # type: ignore[attr-defined]
from django_jobs.enqueueing import build_job
from django_jobs.models import READY_STATUSES, Job, JobStatus, Worker
from django_jobs.registry import registry
from tests.support.procs import wait_until

JOB_TABLE = Job._meta.db_table
#: Whether the measured code's claim sets aside the rows of names it doesn't register (section H;
#: on older code an unknown row was claimed and ended, or stepped over by every claim).
SETS_ASIDE = hasattr(claims, "claim_and_park")
#: The raw loop's table (section E): ``LIKE django_jobs_job INCLUDING ALL``.
CEILING_TABLE = "bench_ceiling_job"


_statements = (
    0  # run by execute(): each is a commit of its own, which database_counters() discounts
)


def execute(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement on the harness's connection; return its rows (empty without any)."""
    global _statements
    _statements += 1
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def scalar(sql: str, params: Any = None) -> Any:
    return execute(sql, params)[0][0]


def create_ceiling_table() -> None:
    execute(f"DROP TABLE IF EXISTS {CEILING_TABLE}")
    execute(f"CREATE TABLE {CEILING_TABLE} (LIKE {JOB_TABLE} INCLUDING ALL)")


def reset() -> None:
    """Empty both job tables and the worker table (new files: no dead tuples, no bloat)."""
    execute(
        f"TRUNCATE {JOB_TABLE}, {Worker._meta.db_table}, {CEILING_TABLE} RESTART IDENTITY CASCADE"
    )


def vacuum_analyze(table: str) -> None:
    execute(f"VACUUM ANALYZE {table}")


def checkpoint() -> bool:
    """Write every dirty buffer out now, so that the writeback of rows just seeded doesn't land in
    the middle of a measured drain (a million rows is ~400 MB of pages, which the checkpointer
    would otherwise flush over the next minutes). Needs superuser or pg_checkpoint; returns
    whether it ran."""
    from django.db import DatabaseError

    try:
        execute("CHECKPOINT")
    except DatabaseError:
        return False
    return True


def analyze(table: str) -> None:
    execute(f"ANALYZE {table}")


# -- rows as enqueue() writes them ----------------------------------------------------------------

_FINISHED_AGO = (
    "(%(n)s - g) * interval '10 milliseconds'"  # one finished row per 10 ms, newest last
)
_OVERRIDES = {
    "queued": {"run_at": "now()", "created_at": "now()"},
    "finished": {
        "status": f"'{JobStatus.SUCCEEDED.value}'",
        "attempts": "1",
        "run_at": f"now() - {_FINISHED_AGO} - interval '5 ms'",
        "created_at": f"now() - {_FINISHED_AGO} - interval '5 ms'",
        "started_at": f"now() - {_FINISHED_AGO} - interval '2 ms'",
        "finished_at": f"now() - {_FINISHED_AGO}",
        "history": (
            "jsonb_build_array(jsonb_build_object('attempt', 1, 'worker', 'bench-seed:1', "
            f"'started_at', now() - {_FINISHED_AGO} - interval '2 ms', "
            f"'finished_at', now() - {_FINISHED_AGO}, 'duration', 0.002, 'outcome', 'succeeded'))"
        ),
    },
}


def row_template(kind: str, **values: Any) -> tuple[list[str], list[str], list[Any]]:
    """Columns, SQL expressions and parameters of one ``bench.noop`` row as enqueue() builds it.

    ``kind`` is "queued" (timestamps ``now()``) or "finished" (succeeded one attempt, finished
    ``(n - g) * 10 ms`` ago for row ``g`` of ``n``: recent enough that no retention prunes it).
    The values come from django_jobs' own ``build_job()``, so a new column keeps the seeded rows
    identical to enqueued ones; ``values`` (by field name) replace some of them, e.g. a ``name``
    no code registers, which enqueue() would refuse.
    """
    from .benchapp.jobs import noop

    job = build_job(noop, [], {})
    overrides = _OVERRIDES[kind]
    unknown = set(values) - {f.attname for f in Job._meta.concrete_fields} - {"id"}
    if unknown:
        raise ValueError(f"row_template(): no field {', '.join(sorted(unknown))} on Job")
    columns, exprs, params = [], [], []
    for f in Job._meta.concrete_fields:
        if f.column == "id":
            continue
        columns.append(connection.ops.quote_name(f.column))
        if f.column in overrides:
            exprs.append(overrides[f.column])
        else:
            exprs.append(f"CAST(%({f.column})s AS {f.db_type(connection)})")
            value = values.get(f.attname, getattr(job, f.attname))
            params.append((f.column, f.get_db_prep_save(value, connection)))
    return columns, exprs, params


def seed(table: str, n: int, kind: str = "queued", **values: Any) -> None:
    """Insert ``n`` no-op jobs into ``table`` with one ``INSERT … SELECT generate_series``
    (``values``: as row_template() takes them)."""
    columns, exprs, params = row_template(kind, **values)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {', '.join(exprs)} FROM generate_series(1, %(n)s) AS g"
    )
    execute(sql, {**dict(params), "n": n})


# -- what PostgreSQL says about a table ------------------------------------------------------------


def table_counters(table: str) -> dict[str, Any]:
    """pg_stat_user_tables' counters for ``table``: dead tuples, updates, HOT updates, vacuums."""
    names = [
        "n_live_tup",
        "n_dead_tup",
        "n_tup_upd",
        "n_tup_hot_upd",
        "n_tup_del",
        "autovacuum_count",
        "autoanalyze_count",
    ]
    rows = execute(
        f"SELECT {', '.join(names)} FROM pg_stat_user_tables WHERE relname = %s", [table]
    )
    return dict(zip(names, rows[0])) if rows else {}


def table_sizes(table: str) -> dict[str, Any]:
    """Bytes of the table, of all its indexes, and of each index."""
    table_bytes, index_bytes, total = execute(
        "SELECT pg_relation_size(%s), pg_indexes_size(%s), pg_total_relation_size(%s)",
        [table, table, table],
    )[0]
    indexes = dict(
        execute(
            "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
            "WHERE relname = %s ORDER BY indexrelname",
            [table],
        )
    )
    return {
        "table_bytes": table_bytes,
        "indexes_bytes": index_bytes,
        "total_bytes": total,
        "index_bytes": indexes,
    }


def drain_window(table: str, after_id: int = 0) -> tuple[float, float, int]:
    """The first claim and the last outcome (Unix times) of the succeeded rows past ``after_id``
    (started_at is set by the claim), and how many rows that is."""
    first, last, rows = execute(
        f"SELECT extract(epoch FROM min(started_at)), extract(epoch FROM max(finished_at)), "
        f"count(*) "
        f"FROM {table} WHERE status = %s AND id > %s",
        [JobStatus.SUCCEEDED.value, after_id],
    )[0]
    return float(first), float(last), rows


def database_counters() -> dict[str, int]:
    """Commits and rows updated in the bench database so far by others than the harness.

    From pg_stat_database, less the statements the harness ran itself (each one commits). Our own
    pending statistics are flushed first (PostgreSQL 15), so the discount is exact; other backends
    flush theirs when they exit, which is why callers wait for the workers' connections to close.
    """
    execute("SELECT pg_stat_force_next_flush()")
    commits, updated = execute(
        "SELECT xact_commit, tup_updated FROM pg_stat_database WHERE datname = current_database()"
    )[0]
    # Every statement execute() ran before this last one has been counted by now.
    return {"xact_commit": commits - (_statements - 1), "tup_updated": updated}


def active_count() -> int:
    """Jobs still queued, retrying or running (answered from the small partial indexes)."""
    statuses = [s.value for s in (*READY_STATUSES, JobStatus.RUNNING)]
    return scalar(f"SELECT count(*) FROM {JOB_TABLE} WHERE status = ANY(%s)", [statuses])


def other_backends() -> int:
    """Connections to the bench database other than ours."""
    return scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )


def listening_backends() -> int:
    """Connections to the bench database whose last statement was a LISTEN (idle listeners)."""
    return scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND query ILIKE %s",
        ["LISTEN %"],
    )


def wait_backends_gone(timeout: float = 30.0) -> None:
    """Wait until the workers' backends have exited (they flush their table statistics on exit)."""
    wait_until(lambda: other_backends() == 0, timeout, "the workers' connections to close")


# -- the claim's plan ------------------------------------------------------------------------------


def claim_statement(limit: int) -> tuple[str, dict[str, Any]]:
    """django_jobs' own claim statement (named parameters), and values a worker would use."""
    params = {
        "now": timezone.now(),
        "queues": [],
        "paused_queues": [],
        "paused_names": [],
        "limit": limit,
        "worker_id": "bench:explain",
        "names": registry.names(),
    }
    return claims.claim_sql("default"), params


def explain(sql: str, params: dict[str, Any], index: str, session: str | None = None) -> dict[str, Any]:
    """EXPLAIN (nothing runs) with these values, and the generic plan of the statement prepared
    (what django_jobs' workers run, and what psycopg's prepared statements may switch to after
    five runs); and whether both use ``index``. ``session``: a statement setting the planner up
    as the worker's connection is, undone afterwards."""
    from django.db import transaction

    with transaction.atomic():
        if session:
            execute(session)
        found = _explain(sql, params, index)
        transaction.set_rollback(True)
    return found


def _explain(sql: str, params: dict[str, Any], index: str) -> dict[str, Any]:
    custom = "\n".join(row[0] for row in execute("EXPLAIN " + sql, params))
    # Placeholders may ask psycopg for text (%s), binary (%b) or either (%t) formats.
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)[sbt]", sql)))
    positional = sql
    for position, name in enumerate(names, start=1):
        positional = re.sub(rf"%\({name}\)[sbt]", f"${position}", positional)
    execute("SET LOCAL plan_cache_mode = force_generic_plan")
    execute(f"PREPARE bench_explain_claim AS {positional}")
    try:
        arguments = ", ".join(["%s"] * len(names))
        generic = "\n".join(
            row[0]
            for row in execute(
                f"EXPLAIN EXECUTE bench_explain_claim({arguments})", [params[n] for n in names]
            )
        )
    finally:
        execute("DEALLOCATE bench_explain_claim")
    return {
        "index": index,
        "uses_index": index in custom and index in generic,
        "plan": custom,
        "generic_plan": generic,
    }


def claim_reads(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one claim under EXPLAIN (ANALYZE, BUFFERS) and roll it back: the buffers it read
    (shared hits and reads), its execution time and its planning time."""
    from django.db import transaction

    with transaction.atomic():
        execute(WORKER_SESSION)  # as on a worker's connection; undone by the rollback
        plan = "\n".join(row[0] for row in execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params))
        transaction.set_rollback(True)
    first = re.search(r"Buffers: shared ((?:hit|read|dirtied|written)=\d+(?: (?:hit|read|dirtied|written)=\d+)*)", plan)
    counts = dict(re.findall(r"(hit|read)=(\d+)", first.group(1))) if first else {}
    ms = re.search(r"Execution Time: ([\d.]+) ms", plan)
    planning = re.search(r"Planning Time: ([\d.]+) ms", plan)
    return {
        "buffers": sum(int(v) for v in counts.values()),
        "index_buffers": index_buffers(plan),
        "ms": float(ms.group(1)) if ms else float("nan"),
        "planning_ms": float(planning.group(1)) if planning else float("nan"),
        "plan": plan,
    }


def index_buffers(plan: str) -> dict[str, int]:
    """The shared buffers (hits and reads) that the index scans of an EXPLAIN (ANALYZE, BUFFERS)
    text read, by index: what walking each index cost, apart from the rows the statement wrote."""
    found: dict[str, int] = {}
    lines = plan.splitlines()
    for n, line in enumerate(lines):
        scan = re.search(r"Index (?:Only )?Scan (?:Backward )?using (\S+)", line)
        if not scan:
            continue
        for detail in lines[n + 1 :]:
            if "->" in detail or not detail.startswith(" "):
                break  # the next node: this scan read no buffers
            if detail.strip().startswith("Buffers: shared"):
                read = sum(int(v) for v in re.findall(r"(?:hit|read)=(\d+)", detail))
                found[scan.group(1)] = found.get(scan.group(1), 0) + read
                break
    return found


def ready_index_name(table: str) -> str:
    """The name of ``table``'s partial index on the ready statuses (its copy has another name)."""
    rows = execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef ILIKE %s",
        # (The keyed index and the unique-key constraint have that predicate too; only the claim's
        # index starts with the claim's order.)
        [table, "%btree (priority DESC, run_at, id)%WHERE%queued%retrying%"],
    )
    return rows[0][0] if rows else "(no ready index)"


def ready_predicate(table: str) -> str:
    """The WHERE clause of ``table``'s ready index, as SQL (since flow control it also leaves out
    rows with keys: a claim must repeat it for the index to apply)."""
    return scalar(
        "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = %s::regclass",
        [ready_index_name(table)],
    )
