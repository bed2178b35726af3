"""The charts' SQL: recording each minute's buckets, reading them back, pruning them.

``RECORD`` is the whole per-minute write in one statement, so a worker pays one round trip a
minute whatever the traffic, and the workers that lose the race pay a single-row look-up.
PostgreSQL only: it needs ``percentile_cont``, ``date_bin`` and data-modifying CTEs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections

from ..models import CounterMark, JobStatus, Sample
from .stats import IS_FINISHED, IS_READY
from .tables import KEYED_SQL, PARKED_SQL, PLAIN_SQL, TABLE

SAMPLE_TABLE = Sample._meta.db_table
MARK_TABLE = CounterMark._meta.db_table
#: The CounterMark row whose ``counted_until`` is the end of the last minute recorded.
MARK = "series"
MINUTE = 60
HOUR = 3600
# date_bin's origin: buckets fall on whole minutes and hours of UTC, whatever the session's zone.
ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"

#: The outcomes a bucket counts, in the order of its columns (and of MINUTES' counts).
OUTCOMES = (JobStatus.SUCCEEDED.value, JobStatus.STOPPED.value, JobStatus.DEAD.value)
_COUNTS = ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in OUTCOMES)
_COLUMNS = "bucket, queue, name, succeeded, stopped, dead, p50, p95, depth, lag"

# Ready jobs that are due, per queue: one branch per partial index the ready rows are split
# between (as db/stats.ACTIVE_BY_QUEUE), each reading only the ready rows.
_DUE = " UNION ALL ".join(
    f"SELECT queue, count(*) AS n, min(run_at) AS oldest FROM {TABLE} "
    f"WHERE {IS_READY} AND {p} AND run_at <= %(now)s GROUP BY queue"
    for p in (PLAIN_SQL, KEYED_SQL, "sequence_key IS NOT NULL", PARKED_SQL)
)

# Record the minutes that ended since the last record, and roll up the hours they complete.
#
# - old/mark: a compare-and-set on the mark row. Every worker runs this once a minute; the first
#   moves the mark, and the others block on its row lock, then find the mark no longer equal to
#   what their snapshot read, update nothing, and every CTE below then reads nothing: a minute
#   is recorded exactly once. A worker that was down catches up at most %(most)s minutes per
#   statement, never further back than %(oldest)s (older minute rows would be pruned at once).
# - finished: a range scan of django_jobs_finished_idx over those minutes only (scalar
#   subqueries, so the bounds are index conditions), however many rows the table keeps.
# - per_name: one pass, three groupings: per queue and name, per queue, and for all queues.
# - due: the queues' depth and lag, read from the ready indexes only when this statement records
#   the minute that just ended (a catch-up's older minutes were not seen, and stay NULL).
# - minutes: the rows to insert; every minute recorded gets an all-queues row (queue and name
#   empty), so a missing minute on a chart means "not recorded", not "nothing happened".
# - hours: the hours whose last minute is among these, rolled up from the minute rows already in
#   the table plus the ones this statement inserts (a CTE doesn't see its siblings' inserts).
# The LIMITs bound nothing (the series are that long at most): they tell the planner how few rows
# to expect, where it would assume 1,000 per generate_series() and price the statement high
# enough to compile it with JIT first (70 ms, more than the statement itself) on a connection
# that allows JIT.
# ON CONFLICT DO NOTHING: should the mark row be lost and made again, minutes already recorded
# are skipped instead of failing the statement (and the mark) for ever.
RECORD = f"""
WITH old AS (
    SELECT counted_until FROM {MARK_TABLE} WHERE key = %(key)s
), mark AS (
    UPDATE {MARK_TABLE} AS m
    SET counted_until = LEAST(%(target)s,
        GREATEST(old.counted_until, %(oldest)s) + %(most)s * INTERVAL '1 minute')
    FROM old
    WHERE m.key = %(key)s AND m.counted_until = old.counted_until AND old.counted_until < %(target)s
    RETURNING GREATEST(old.counted_until, %(oldest)s) AS since, m.counted_until AS until
), seen AS (
    -- The minute whose depth and lag this statement sees: the last one, unless catching up.
    SELECT until - INTERVAL '1 minute' AS bucket FROM mark WHERE until = %(target)s
), finished AS (
    SELECT date_bin(INTERVAL '1 minute', finished_at, {ORIGIN}) AS bucket, queue, name, status,
           EXTRACT(EPOCH FROM finished_at - started_at) AS seconds
    FROM {TABLE}
    WHERE {IS_FINISHED}
      AND finished_at >= (SELECT since FROM mark) AND finished_at < (SELECT until FROM mark)
), per_name AS (
    SELECT bucket, COALESCE(queue, '') AS queue, COALESCE(name, '') AS name, {_COUNTS},
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95
    FROM finished GROUP BY GROUPING SETS ((bucket, queue, name), (bucket, queue), (bucket))
), due AS (
    SELECT (SELECT bucket FROM seen) AS bucket, queue, sum(n) AS depth,
           EXTRACT(EPOCH FROM %(now)s - min(oldest)) AS lag
    FROM ({_DUE}) AS r
    WHERE EXISTS (SELECT 1 FROM seen)
    GROUP BY queue
), minutes AS (
    SELECT {_COLUMNS.replace("depth, lag", "NULL::bigint AS depth, NULL::float AS lag")}
    FROM per_name WHERE name <> ''
    UNION ALL
    SELECT COALESCE(p.bucket, d.bucket), COALESCE(p.queue, d.queue), '',
           COALESCE(p.succeeded, 0), COALESCE(p.stopped, 0), COALESCE(p.dead, 0), p.p50, p.p95,
           CASE WHEN COALESCE(p.bucket, d.bucket) = (SELECT bucket FROM seen) THEN COALESCE(d.depth, 0) END,
           CASE WHEN COALESCE(p.bucket, d.bucket) = (SELECT bucket FROM seen) THEN COALESCE(d.lag, 0) END
    FROM (SELECT * FROM per_name WHERE name = '' AND queue <> '') AS p
    FULL JOIN due AS d ON d.bucket = p.bucket AND d.queue = p.queue
    UNION ALL
    SELECT b.bucket, '', '', COALESCE(p.succeeded, 0), COALESCE(p.stopped, 0), COALESCE(p.dead, 0),
           p.p50, p.p95,
           CASE WHEN b.bucket = (SELECT bucket FROM seen) THEN (SELECT COALESCE(sum(depth), 0) FROM due) END,
           CASE WHEN b.bucket = (SELECT bucket FROM seen) THEN (SELECT COALESCE(max(lag), 0) FROM due) END
    FROM (SELECT generate_series(since, until - INTERVAL '1 minute', INTERVAL '1 minute') AS bucket
          FROM mark LIMIT %(most)s) AS b
    LEFT JOIN per_name AS p ON p.bucket = b.bucket AND p.queue = '' AND p.name = ''
), put_minutes AS (
    INSERT INTO {SAMPLE_TABLE} (span, {_COLUMNS})
    SELECT {MINUTE}, {_COLUMNS} FROM minutes
    ON CONFLICT (span, name, bucket, queue) DO NOTHING
    RETURNING 1
), hours AS (
    SELECT generate_series(date_bin(INTERVAL '1 hour', since, {ORIGIN}), until - INTERVAL '1 hour',
                           INTERVAL '1 hour') AS hour
    FROM mark LIMIT %(most)s / 60 + 1
), hour_minutes AS (
    SELECT date_bin(INTERVAL '1 hour', bucket, {ORIGIN}) AS hour, {_COLUMNS} FROM (
        SELECT {_COLUMNS} FROM {SAMPLE_TABLE}
        WHERE span = {MINUTE} AND bucket >= (SELECT min(hour) FROM hours)
          AND bucket < (SELECT since FROM mark)
        UNION ALL
        SELECT {_COLUMNS} FROM minutes
    ) AS m
), put_hours AS (
    INSERT INTO {SAMPLE_TABLE} (span, {_COLUMNS})
    SELECT {HOUR}, hour, queue, name, sum(succeeded), sum(stopped), sum(dead),
           sum(p50 * (succeeded + stopped + dead))
             / NULLIF(sum(CASE WHEN p50 IS NOT NULL THEN succeeded + stopped + dead END), 0),
           sum(p95 * (succeeded + stopped + dead))
             / NULLIF(sum(CASE WHEN p95 IS NOT NULL THEN succeeded + stopped + dead END), 0),
           max(depth), max(lag)
    FROM hour_minutes WHERE hour IN (SELECT hour FROM hours)
    GROUP BY hour, queue, name
    ON CONFLICT (span, name, bucket, queue) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM old), (SELECT since FROM mark), (SELECT until FROM mark),
       (SELECT count(*) FROM put_minutes), (SELECT count(*) FROM put_hours)
"""

# Start recording: the first record() ever (or after the mark row was deleted) finds no mark.
START = (
    f"INSERT INTO {MARK_TABLE} (key, counted_until) VALUES (%(key)s, %(target)s) "
    "ON CONFLICT (key) DO NOTHING"
)

# One chart's buckets, grouped into steps of %(step)s seconds: the rows of one name (or, with
# name '', the queues' rows) at one span, plus the all-queues rows that say which buckets were
# recorded. A range scan of django_jobs_sample_unique (span, name, bucket, ...): the overview's
# day reads 1,440 rows per queue, however many jobs ran. Durations are averaged weighted by jobs,
# and depth and lag are the step's highest.
READ = f"""
SELECT date_bin(%(step)s * INTERVAL '1 second', bucket, {ORIGIN}) AS at, queue, name,
       sum(succeeded), sum(stopped), sum(dead),
       sum(p50 * (succeeded + stopped + dead))
         / NULLIF(sum(CASE WHEN p50 IS NOT NULL THEN succeeded + stopped + dead END), 0),
       sum(p95 * (succeeded + stopped + dead))
         / NULLIF(sum(CASE WHEN p95 IS NOT NULL THEN succeeded + stopped + dead END), 0),
       max(depth), max(lag)
FROM {SAMPLE_TABLE}
WHERE span = %(span)s AND name = ANY(%(names)s) AND (name <> '' OR %(queues)s OR queue = '')
  AND bucket >= %(since)s AND bucket < %(until)s
GROUP BY 1, 2, 3 ORDER BY 1
"""

# The queues' minute rows and the all-queues ones (which say a minute was recorded) from
# %(since)s to %(until)s, oldest first: what the overview's last hour reads instead of counting
# the job table over the minutes recorded. A range scan of django_jobs_sample_unique.
MINUTES = f"""
SELECT bucket, queue, {", ".join(OUTCOMES)} FROM {SAMPLE_TABLE}
WHERE span = {MINUTE} AND name = '' AND bucket >= %(since)s AND bucket < %(until)s
ORDER BY bucket
"""

# Delete one bounded batch of buckets of a span older than the cutoff (django_jobs_sample_age_idx).
PRUNE = (
    f"DELETE FROM {SAMPLE_TABLE} WHERE id IN (SELECT id FROM {SAMPLE_TABLE} "
    "WHERE span = %s AND bucket < %s LIMIT %s FOR UPDATE SKIP LOCKED)"
)


@dataclass(frozen=True)
class Recorded:
    """What one record() did: the minutes [since, until) it wrote, and its rows."""

    since: datetime | None
    until: datetime | None
    minute_rows: int
    hour_rows: int
    started: bool = False


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def record(
    using: str, *, now: datetime, settle: timedelta, keep: timedelta, most: int = 60
) -> Recorded:
    """Run RECORD: record the minutes that ended ``settle`` before ``now`` and aren't yet."""
    target = floor_minute(now - settle)
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    params = {
        "key": MARK, "target": adapt(target), "oldest": adapt(floor_minute(now - keep)),
        "most": most, "now": adapt(now),
    }
    with connection.cursor() as cursor:
        cursor.execute(RECORD, params)
        marks, since, until, minute_rows, hour_rows = cursor.fetchone()
        if not marks:
            # Recording starts now: nothing before this minute is counted.
            cursor.execute(START, params)
            return Recorded(None, None, 0, 0, started=True)
    return Recorded(since, until, int(minute_rows), int(hour_rows))


def read(
    using: str, *, span: int, step: int, since: datetime, until: datetime, name: str = ""
) -> list[tuple[Any, ...]]:
    """Run READ: (at, queue, name, succeeded, stopped, dead, p50, p95, depth, lag) rows.

    With ``name``, that name's rows (per queue) and the all-queues rows; without, the queues' rows
    and the all-queues rows. None on SQLite, where nothing is recorded.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    adapt = connection.ops.adapt_datetimefield_value
    params = {
        "span": span, "step": step, "since": adapt(since), "until": adapt(until),
        "names": [name, ""] if name else [""], "queues": not name,
    }
    with connection.cursor() as cursor:
        cursor.execute(READ, params)
        return cursor.fetchall()


def minutes(using: str, *, since: datetime, until: datetime) -> list[tuple[Any, ...]]:
    """Run MINUTES: (bucket, queue, *the OUTCOMES' counts) rows; none on SQLite."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.execute(MINUTES, {"since": adapt(since), "until": adapt(until)})
        return cursor.fetchall()


def prune(using: str, *, span: int, before: datetime, batch: int) -> int:
    """Run PRUNE: delete up to ``batch`` buckets of ``span`` that began before ``before``."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(PRUNE, [span, connection.ops.adapt_datetimefield_value(before), batch])
        return cursor.rowcount
