"""Running statements: the prepared-statement path for the hot ones, and the worker's session."""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from django.db import OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import _queries

from ..conf import jobs_settings

T = TypeVar("T")


def placeholders(values: Sequence[Any]) -> str:
    """``(%s, %s, …)``, one placeholder per value."""
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def is_postgres(using: str) -> bool:
    """Whether ``using`` is a PostgreSQL database (else SQLite, for the demo)."""
    return connections[using].vendor == "postgresql"


#: How many times retrying_deadlocks() runs its body again after PostgreSQL aborted it.
DEADLOCK_RETRIES = 4


def is_deadlock(exc: BaseException) -> bool:
    """Whether ``exc`` (a Django database error) is PostgreSQL aborting this transaction to break a
    deadlock (SQLSTATE 40P01): everything the transaction did is rolled back, and running it again
    is safe."""
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


def retrying_deadlocks(using: str, body: Callable[[], T]) -> T:
    """``body()`` in a transaction (a savepoint inside the caller's), run again from the start
    when PostgreSQL aborts it to break a deadlock, up to DEADLOCK_RETRIES more times.

    For an operator's change, which locks rows in its own order while workers lock theirs in
    another: whichever PostgreSQL aborts has done nothing, and runs again with fresh reads. The
    body must keep its effects inside the transaction (its writes, NOTIFY, on_commit callbacks).
    """
    for tries_left in range(DEADLOCK_RETRIES, -1, -1):
        try:
            with transaction.atomic(using=using):
                return body()
        except OperationalError as exc:
            if not is_deadlock(exc) or not tries_left:
                raise
    raise AssertionError("unreachable")


def json_value(value: Any) -> str:
    """A JSON column's value as JSON text."""
    # Django registers a text loader for jsonb; a backend without one hands back the value.
    return value if isinstance(value, str) else json.dumps(value)


def dump_json(value: Any) -> str | None:
    """``value`` as compact JSON text (None stays NULL)."""
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
WORKER_SESSION = (
    "SELECT set_config('enable_bitmapscan', 'off', false), set_config('enable_seqscan', 'off', false), "
    "set_config('enable_sort', 'off', false), set_config('plan_cache_mode', 'force_generic_plan', false), "
    "set_config('jit', 'off', false), set_config('max_parallel_workers_per_gather', '0', false)"
)
_ONLY_EXPLICIT = 2**31 - 1  # a psycopg prepare_threshold that only prepare=True reaches
_TUPLES_OK = 2  # psycopg.pq.ExecStatus.TUPLES_OK: the statement returned rows
_tuned: weakref.WeakSet[Any] = weakref.WeakSet()


class _FixedQuery(_queries.PostgresQuery):
    """psycopg's query conversion, with the placeholders of each statement text parsed once.

    psycopg caches that parsing only for statements of up to 4,096 bytes; the worker's round trip
    (claims.sync) is 7-9 KB, and parsing it took 0.15-0.45 ms on every run: on every pickup, and
    a few microseconds per job of a drain. Our statements are a few fixed texts, so a dict keeps
    them all. (psycopg's ``_queries`` is internal; a test checks what this relies on.)
    """

    _parsed: dict[tuple[str, str], Any] = {}

    def convert(self, query: Any, vars: Any) -> None:
        if vars is None or not isinstance(query, str):
            super().convert(query, vars)
            return
        encoding = self._tx.encoding
        key = (query, encoding)  # (a constant text's hash is computed once, and kept)
        parsed = self._parsed.get(key)
        if parsed is None:
            parsed = _queries._query2pg_nocache(query.encode(encoding), encoding)
            if len(self._parsed) < 256:  # (a text built per call would be a leak: not kept)
                self._parsed[key] = parsed
        self.query, self._want_formats, self._order, self._parts = parsed
        self.dump(vars)


class _Cursor(psycopg.Cursor[Any]):
    _query_cls = _FixedQuery


def run_prepared(
    using: str | BaseDatabaseWrapper, sql: str, params: Any, *, prepare: bool = True, worker: bool = False
) -> list[tuple[Any, ...]]:
    """Run a statement on PostgreSQL through a server-side-binding cursor and return its rows.

    Django's own cursors bind parameters client-side, so PostgreSQL parses and plans every
    statement again; the hot statements here are fixed texts, prepared once per connection
    (``PREPARE_STATEMENTS``; the claim is still planned per run, see WORKER_SESSION). The
    statement runs on Django's connection, so it is part of the caller's transaction, raises
    Django's database errors, and shows up in ``connection.queries`` (debug toolbar, tests).
    """
    # (A caller that has the connection at hand passes it: the alias's look-up costs ~2 µs.)
    wrapper = connections[using] if isinstance(using, str) else using
    wrapper.ensure_connection()
    wrapper.validate_no_broken_transaction()
    logged = wrapper.queries_logged
    started = time.monotonic() if logged else 0.0
    with wrapper.wrap_database_errors:
        # Behind a transaction-pooling PgBouncer (LISTEN_NOTIFY off) a session setting would leak
        # to other clients' sessions, so it is skipped there.
        if worker and jobs_settings.LISTEN_NOTIFY and wrapper.connection not in _tuned:
            wrapper.connection.execute(WORKER_SESSION)
            if not wrapper.in_atomic_block:  # a rollback would undo the settings (tests do that)
                _tuned.add(wrapper.connection)
        prepare = prepare and bool(jobs_settings.PREPARE_STATEMENTS)
        if prepare and wrapper.connection.prepare_threshold is None:
            # Django opens connections with prepare_threshold=None, which makes psycopg ignore
            # prepare=True too. A threshold no statement reaches keeps everything else unprepared
            # (Django's client-side cursors never prepare anyway) and lets ours through.
            wrapper.connection.prepare_threshold = _ONLY_EXPLICIT
        with _Cursor(wrapper.connection) as cursor:
            cursor.execute(sql, params, prepare=prepare)
            # (pgresult's status, not cursor.description, which builds a Column per field.)
            result = cursor.pgresult
            rows = cursor.fetchall() if result is not None and result.status == _TUPLES_OK else []
    if logged:
        wrapper.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows
