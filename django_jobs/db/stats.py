"""The statistics' SQL: counts for the admin's overview and the metrics endpoint, the finished-job
tally, and the planner's row estimates that stand in for ``COUNT(*)`` on a large table.

Each count reads only the small part of the job table an index already isolates: the ready rows
(``django_jobs_ready_idx``), the running rows (``django_jobs_running_idx``), the finished rows
in a range of ``finished_at`` (``django_jobs_finished_idx``) and the dead rows
(``django_jobs_dead_idx``); the flow-control limits' usage reads the running rows, the ready rows
with keys (``django_jobs_keyed_idx``, ``django_jobs_sequence_idx``) and the start log by key
(``django_jobs_start_key_idx``).
tests/integration/db/test_stats.py asserts with EXPLAIN that none of them scans the whole table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections

from ..models import FINISHED_STATUSES, JobStatus, Start
from .tables import KEYED_SQL, PARKED_SQL, PLAIN_SQL, READY_SQL, TABLE, status_in, status_is

#: The predicates of the partial indexes the statements below read.
IS_READY = READY_SQL
IS_RUNNING = status_in([JobStatus.RUNNING])
IS_WAITING = status_is(JobStatus.WAITING)
IS_FINISHED = status_in(FINISHED_STATUSES)
IS_DEAD = status_is(JobStatus.DEAD)

# Ready rows and running rows, grouped by queue and status. One branch per partial index: the
# ready rows are split between django_jobs_ready_idx (no flow-control keys), django_jobs_keyed_idx,
# django_jobs_sequence_idx and django_jobs_parked_idx, and the running ones are in django_jobs_running_idx
# (each holds only the rows of its predicate, so both stay small however many finished rows pile
# up), and visits the heap only for those rows' queue and run_at. "Ready now" and the oldest
# ready run_at (the queue's lag) come from the same rows, so they cost nothing extra.
_READY_BRANCH = (
    "SELECT queue, status, count(*) AS n, "
    "sum(CASE WHEN run_at <= %(now)s THEN 1 ELSE 0 END) AS due, "
    "min(CASE WHEN run_at <= %(now)s THEN run_at END) AS oldest "
    f"FROM {TABLE} WHERE {IS_READY} AND {{}} GROUP BY queue, status"
)
ACTIVE_BY_QUEUE = (
    "SELECT queue, status, CAST(sum(n) AS bigint), CAST(sum(due) AS bigint), min(oldest) FROM ("
    + " UNION ALL ".join(_READY_BRANCH.format(p) for p in (PLAIN_SQL, KEYED_SQL, "sequence_key IS NOT NULL", PARKED_SQL))
    + f" UNION ALL SELECT queue, status, count(*), 0, NULL FROM {TABLE} WHERE {IS_RUNNING} GROUP BY queue, status"
    # Waiting jobs (workflows): an index-only scan of django_jobs_waiting_idx.
    + f" UNION ALL SELECT queue, status, count(*), 0, NULL FROM {TABLE} WHERE {IS_WAITING} GROUP BY queue, status"
    ") AS active GROUP BY queue, status"
)

# Finished since %(since)s, by queue and status: a range scan of django_jobs_finished_idx
# (partial on the finished statuses, ordered by finished_at), which touches only the recent rows
# however long the retention keeps the older ones.
_FINISHED_BY_QUEUE = f"SELECT queue, status, count(*) FROM {TABLE} WHERE {IS_FINISHED} AND {{}} GROUP BY queue, status"
FINISHED_SINCE_BY_QUEUE = _FINISHED_BY_QUEUE.format("finished_at >= %(since)s")

# The same outside the minutes the charts recorded (stats.queue_stats reads those from their
# rows): before the first of them and after the last, two range scans of the same index.
FINISHED_AROUND_BY_QUEUE = (
    _FINISHED_BY_QUEUE.format("finished_at >= %(since)s AND finished_at < %(first)s")
    + " UNION ALL " + _FINISHED_BY_QUEUE.format("finished_at >= %(end)s")
)

# Every finished row, counted: the caller runs it only while the planner expects few.
FINISHED_BY_STATUS = f"SELECT status, count(*) FROM {TABLE} WHERE {IS_FINISHED} GROUP BY status"

# Dead jobs, counted up to a cap: an index-only scan of django_jobs_dead_idx (partial on
# status = 'dead'), which holds the dead rows only; the LIMIT in a subquery bounds the work.
DEAD_COUNT_CAPPED = (
    f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} WHERE {IS_DEAD} LIMIT %(cap)s) AS dead"
)

# The tally's window, by queue, name and status: a range scan of django_jobs_finished_idx over the
# few seconds since the last tally, however many rows the table holds.
FINISHED_BETWEEN_BY_NAME = (
    f"SELECT queue, name, status, count(*) FROM {TABLE} "
    f"WHERE {IS_FINISHED} "
    f"AND finished_at > %s AND finished_at <= %s GROUP BY queue, name, status"
)

START_TABLE = Start._meta.db_table

# Running jobs by queue and job name: the limits' use of their concurrency, per limited queue and
# per job name. Running rows are few, and django_jobs_running_idx (partial on status = 'running')
# holds only them.
RUNNING_BY_QUEUE_AND_NAME = f"SELECT queue, name, count(*) FROM {TABLE} WHERE {IS_RUNNING} GROUP BY queue, name"

# Starts in each rate's current window: per start key ("queue:<name>" for a queue's rate, the
# job name for a job's), the starts logged after %(since)s, the window's beginning. One range
# probe of django_jobs_start_key_idx (key, started_at) per key, however long the log is.
STARTS_IN_WINDOWS = (
    f"SELECT w.key, (SELECT count(*) FROM {START_TABLE} AS s "
    "WHERE s.key = w.key AND s.started_at > w.since) "
    "FROM unnest(%(keys)s::text[], %(since)s::timestamptz[]) AS w(key, since)"
)

# Per job name limited per key (a concurrency_key or rate_key template): how many keys have jobs
# ready to start, and how many of those keys are at their limit, which holds those jobs back.
# Counted here rather than in Python because a name may have tens of thousands of keys. The
# ready rows with keys are in django_jobs_keyed_idx, or in django_jobs_sequence_idx when they
# also belong to a sequence (one branch per index, each with its predicate spelled out so the
# planner can use it); running counts come from django_jobs_running_idx; starts from one probe
# of django_jobs_start_key_idx per key, counted only up to the rate (beyond it the key is at its
# limit whatever the number). A key is counted as the gates count it (flow.gates_of): across
# job names, and the job name for a job without one. %(names)s and the arrays beside it give
# each name's per-key limits: a NULL concurrency (or rate) means it isn't limited that way per key.
KEYS_AT_LIMIT = f"""
WITH rule(name, concurrency, since, rate) AS (
    SELECT * FROM unnest(%(names)s::text[], %(concurrency)s::int[], %(since)s::timestamptz[], %(rate)s::int[])
), waiting AS (
    SELECT name, concurrency_key, rate_key FROM {TABLE}
    WHERE {IS_READY} AND {KEYED_SQL} AND run_at <= %(now)s AND name = ANY(%(names)s)
    UNION
    SELECT name, concurrency_key, rate_key FROM {TABLE}
    WHERE {IS_READY} AND sequence_key IS NOT NULL AND run_at <= %(now)s AND name = ANY(%(names)s)
), running AS (
    SELECT COALESCE(concurrency_key, name) AS key, count(*) AS n FROM {TABLE}
    WHERE {IS_RUNNING} GROUP BY 1
), concurrency_keys AS (
    SELECT DISTINCT w.name, COALESCE(w.concurrency_key, w.name) AS key
    FROM waiting AS w JOIN rule ON rule.name = w.name WHERE rule.concurrency IS NOT NULL
), rate_keys AS (
    SELECT DISTINCT w.name, COALESCE(w.rate_key, w.name) AS key
    FROM waiting AS w JOIN rule ON rule.name = w.name WHERE rule.rate IS NOT NULL
)
SELECT k.name, 'concurrency', count(*), count(*) FILTER (WHERE COALESCE(r.n, 0) >= rule.concurrency)
FROM concurrency_keys AS k JOIN rule ON rule.name = k.name LEFT JOIN running AS r ON r.key = k.key
GROUP BY k.name
UNION ALL
SELECT k.name, 'rate', count(*), count(*) FILTER (WHERE s.n >= rule.rate)
FROM rate_keys AS k JOIN rule ON rule.name = k.name
CROSS JOIN LATERAL (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM {START_TABLE} WHERE key = k.key AND started_at > rule.since LIMIT rule.rate
    ) AS capped
) AS s
GROUP BY k.name
"""

# The planner's row estimate for {select} (the rows per page of the last VACUUM or ANALYZE, times
# the table's current pages, times the predicates' selectivity): EXPLAIN reads no rows.
PLANNER_ROWS = "EXPLAIN (FORMAT JSON) {select}"

# The rows matching a status predicate, for PLANNER_ROWS; {where} is built from JobStatus values
# only (status_in, status_is).
ROWS_WHERE = "SELECT 1 FROM " + TABLE + " WHERE {where}"


def _fetch(using: str, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    params = {k: adapt(v) if isinstance(v, datetime) else v for k, v in params.items()}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def active_by_queue(using: str, *, now: datetime) -> list[tuple[Any, ...]]:
    """Run ACTIVE_BY_QUEUE: (queue, status, count, ready count, oldest ready run_at) rows."""
    return _fetch(using, ACTIVE_BY_QUEUE, {"now": now})


def finished_since_by_queue(using: str, *, since: datetime) -> list[tuple[Any, ...]]:
    """Run FINISHED_SINCE_BY_QUEUE: (queue, status, count) rows."""
    return _fetch(using, FINISHED_SINCE_BY_QUEUE, {"since": since})


def finished_around_by_queue(
    using: str, *, since: datetime, first: datetime, end: datetime
) -> list[tuple[Any, ...]]:
    """Run FINISHED_AROUND_BY_QUEUE: (queue, status, count) rows of the jobs that finished from
    ``since`` to ``first`` or from ``end`` on (each queue and status may come twice)."""
    return _fetch(using, FINISHED_AROUND_BY_QUEUE, {"since": since, "first": first, "end": end})


def finished_by_status(using: str) -> list[tuple[Any, ...]]:
    """Run FINISHED_BY_STATUS: (status, count) rows."""
    return _fetch(using, FINISHED_BY_STATUS, {})


def dead_count(using: str, *, cap: int) -> int:
    """Run DEAD_COUNT_CAPPED: how many jobs are dead, up to ``cap``."""
    (count,) = _fetch(using, DEAD_COUNT_CAPPED, {"cap": cap})[0]
    return int(count)


def finished_between_by_name(
    using: str, *, since: datetime, until: datetime
) -> list[tuple[Any, ...]]:
    """Run FINISHED_BETWEEN_BY_NAME: (queue, name, status, count) rows finished in the window."""
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(FINISHED_BETWEEN_BY_NAME, [adapt(since), adapt(until)])
        return cursor.fetchall()


def running_by_queue_and_name(using: str) -> list[tuple[Any, ...]]:
    """Run RUNNING_BY_QUEUE_AND_NAME: (queue, name, count) rows."""
    return _fetch(using, RUNNING_BY_QUEUE_AND_NAME, {})


def starts_in_windows(using: str, windows: dict[str, datetime]) -> dict[str, int]:
    """Run STARTS_IN_WINDOWS: the starts logged under each key after its window's beginning."""
    if not windows:
        return {}
    keys = sorted(windows)
    rows = _fetch(using, STARTS_IN_WINDOWS, {"keys": keys, "since": [windows[k] for k in keys]})
    return {key: int(count) for key, count in rows}


def keys_at_limit(
    using: str, *, now: datetime, rules: dict[str, tuple[int | None, datetime | None, int | None]]
) -> list[tuple[str, str, int, int]]:
    """Run KEYS_AT_LIMIT for ``rules`` (name -> concurrency per key, rate window's beginning,
    starts per key): (name, "concurrency" or "rate", keys with ready jobs, keys at their limit)."""
    if not rules:
        return []
    names = sorted(rules)
    params = {
        "now": now,
        "names": names,
        "concurrency": [rules[n][0] for n in names],
        "since": [rules[n][1] for n in names],
        "rate": [rules[n][2] for n in names],
    }
    return [(n, kind, int(w), int(a)) for n, kind, w, a in _fetch(using, KEYS_AT_LIMIT, params)]


def planner_rows(using: str, select: str, params: Sequence[Any] | None = None) -> int:
    """Run PLANNER_ROWS: how many rows PostgreSQL's planner expects ``select`` to return."""
    with connections[using].cursor() as cursor:
        cursor.execute(PLANNER_ROWS.format(select=select), params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def estimated_rows(using: str, where: str) -> int:
    """Run PLANNER_ROWS over ROWS_WHERE: the planner's count of jobs matching ``where``."""
    return planner_rows(using, ROWS_WHERE.format(where=where))
