"""The statistics' SQL: counts for the admin's overview and the metrics endpoint, the finished-job
tally, and the planner's row estimates that stand in for ``COUNT(*)`` on a large table.

Each count reads only the small part of the job table an index already isolates: the ready rows
(``django_jobs_ready_idx``), the running rows (``django_jobs_running_idx``), the finished rows
in a range of ``finished_at`` (``django_jobs_finished_idx``) and the dead rows
(``django_jobs_dead_idx``).
tests/integration/db/test_stats.py asserts with EXPLAIN that none of them scans the whole table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections

from ..models import FINISHED_STATUSES, JobStatus
from .tables import KEYED_SQL, READY_SQL, TABLE, UNGATED_SQL, status_in, status_is

#: The predicates of the partial indexes the statements below read.
IS_READY = READY_SQL
IS_RUNNING = status_in([JobStatus.RUNNING])
IS_FINISHED = status_in(FINISHED_STATUSES)
IS_DEAD = status_is(JobStatus.DEAD)

# Ready rows and running rows, grouped by queue and status. One branch per partial index: the
# ready rows are split between django_jobs_ready_idx (no flow-control keys), django_jobs_keyed_idx
# and django_jobs_sequence_idx, and the running ones are in django_jobs_running_idx
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
    "SELECT queue, status, sum(n)::bigint, sum(due)::bigint, min(oldest) FROM ("
    + " UNION ALL ".join(_READY_BRANCH.format(p) for p in (UNGATED_SQL, KEYED_SQL, "sequence_key IS NOT NULL"))
    + f" UNION ALL SELECT queue, status, count(*), 0, NULL FROM {TABLE} WHERE {IS_RUNNING} GROUP BY queue, status"
    ") AS active GROUP BY queue, status"
)

# Finished since %(since)s, by queue and status: a range scan of django_jobs_finished_idx
# (partial on the finished statuses, ordered by finished_at), which touches only the recent rows
# however long the retention keeps the older ones.
FINISHED_SINCE_BY_QUEUE = (
    f"SELECT queue, status, count(*) FROM {TABLE} "
    f"WHERE {IS_FINISHED} AND finished_at >= %(since)s GROUP BY queue, status"
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
