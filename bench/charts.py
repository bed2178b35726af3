"""Section J's parts (charts, issue 18): fill the job table and the charts' table, time the
per-minute statement, and load the overview in a process with the admin (bench/overview.py).

The fill and the statement run in the harness process on Django's connection (autocommit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from . import db
from .report import percentile

try:  # a run measuring (--at) a commit from before the charts has none of this
    from django_jobs.db import series as _series
    from django_jobs.services.tally import SETTLE, record_samples

    SAMPLE_TABLE: str | None = _series.SAMPLE_TABLE
except ImportError:
    SAMPLE_TABLE = None

REPO = Path(__file__).resolve().parent.parent
#: The charts' table as its retention keeps it full: 48 hours of minutes, 90 days of hours.
MINUTES, HOURS = 48 * 60, 90 * 24
QUEUES = ("default", "emails", "reports")
#: Job names spread over the queues (times --scale, at least 2).
NAMES = 20
#: Per-minute statements timed (each records one minute) and overview loads per period.
RECORDS, LOADS = 20, 15
#: The finished jobs' spread: a week of retention, as a site keeps them.
SPREAD_SECONDS = 7 * 86400
#: Jobs finishing per minute in the busy minutes the per-minute statement records (times --scale).
BUSY_PER_MINUTE = 6_000


def seed_finished(n: int, seconds: float, names: int) -> None:
    """Insert ``n`` succeeded jobs finished evenly over the last ``seconds``, spread over QUEUES and
    ``names`` job names (db.seed()'s rows, with their times and names replaced)."""
    columns, exprs, params = db.row_template("finished")
    spacing = "(%(spacing)s * interval '1 millisecond')"
    exprs = [e.replace("interval '10 milliseconds'", spacing) for e in exprs]
    queues = "ARRAY[" + ", ".join(f"'{q}'" for q in QUEUES) + "]"
    for i, column in enumerate(columns):
        if column == '"queue"':
            exprs[i] = f"({queues})[1 + g %% {len(QUEUES)}]"
        elif column == '"name"':
            exprs[i] = f"'bench.job' || (g %% {names})"
    db.execute(
        f"INSERT INTO {db.JOB_TABLE} ({', '.join(columns)}) "
        f"SELECT {', '.join(exprs)} FROM generate_series(1, %(n)s) AS g",
        {**dict(params), "n": n, "spacing": seconds * 1000 / n},
    )


def fill_samples(names: int) -> int:
    """Fill the charts' table as a busy site's is after 90 days; return its rows."""
    pairs = [(QUEUES[i % len(QUEUES)], f"bench.job{i}") for i in range(names)]
    pairs += [(q, "") for q in QUEUES] + [("", "")]
    queues = [q for q, _ in pairs]
    named = [n for _, n in pairs]
    for span, count in ((60, MINUTES), (3600, HOURS)):
        db.execute(
            f"INSERT INTO {SAMPLE_TABLE} (span, bucket, queue, name, succeeded, stopped, dead, p50, p95, "
            "depth, lag) "
            "SELECT %(span)s, date_bin(%(span)s * interval '1 second', now(), '2000-01-01'::timestamptz) "
            "  - (g * %(span)s) * interval '1 second', p.queue, p.name, 40 + g %% 17, g %% 3, "
            "  (g %% 29 = 0)::int, 0.05 + (g %% 7) / 100.0, 0.4 + (g %% 5) / 10.0, "
            "  CASE WHEN p.name = '' THEN g %% 50 END, CASE WHEN p.name = '' THEN (g %% 90)::float END "
            "FROM generate_series(1, %(count)s) AS g, "
            "unnest(%(queues)s::text[], %(names)s::text[]) AS p(queue, name)",
            {"span": span, "count": count, "queues": queues, "names": named},
        )
    return int(db.scalar(f"SELECT count(*) FROM {SAMPLE_TABLE}"))


def time_records() -> dict[str, Any]:
    """Time the per-minute statement recording one minute of the seeded jobs (the winner), and
    run again at once (a worker that lost the race), RECORDS times each; count its statements."""
    now = timezone.now()
    target = _series.floor_minute(now - SETTLE)
    winner, loser, statements = [], [], []
    for n in range(RECORDS):
        minute = target - timedelta(minutes=n + 1)
        db.execute(f"DELETE FROM {SAMPLE_TABLE} WHERE span = 60 AND bucket >= %s", [minute])
        _recorded_until(minute)
        at = minute + timedelta(minutes=1) + SETTLE
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            done = record_samples("default", now=at)
            winner.append((time.perf_counter() - started) * 1000)
        statements.append(len(captured.captured_queries))
        if done.minute_rows < 1:
            raise RuntimeError(f"the per-minute statement recorded nothing for {minute}")
        started = time.perf_counter()
        record_samples("default", now=at)
        loser.append((time.perf_counter() - started) * 1000)
    # The jobs each statement read, on average: the minutes it recorded hold the seeded jobs.
    jobs = round(db.scalar(
        f"SELECT count(*) FROM {db.JOB_TABLE} WHERE status = 'succeeded' AND finished_at >= %s "
        "AND finished_at < %s",
        [target - timedelta(minutes=RECORDS), target],
    ) / RECORDS)
    return {
        "p50_ms": percentile(winner, 50), "times_ms": winner, "lost_p50_ms": percentile(loser, 50),
        "statements": max(statements), "jobs_in_a_minute": jobs,
    }


def _recorded_until(moment: datetime) -> None:
    """Set the mark of the charts' recording: the next record starts at ``moment``."""
    db.execute(
        "INSERT INTO django_jobs_countermark (key, counted_until) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET counted_until = EXCLUDED.counted_until",
        [_series.MARK, moment],
    )


def forget_samples() -> None:
    """Delete the charts' rows and the mark of their recording: as if no minute was recorded."""
    db.execute(f"DELETE FROM {SAMPLE_TABLE}")
    db.execute("DELETE FROM django_jobs_countermark WHERE key = %s", [_series.MARK])


def record_last_hour() -> int:
    """Record the charts' minutes of the last hour with the tally's statement, as the workers of a
    running site have; return how many minutes it recorded."""
    now = timezone.now()
    first = _series.floor_minute(now - timedelta(hours=1)) + timedelta(minutes=1)
    forget_samples()
    _recorded_until(first)
    done = record_samples("default", now=now)
    if done.since != first or done.until is None:
        raise RuntimeError(f"the tally recorded {done}, not the minutes from {first}")
    return int((done.until - done.since).total_seconds() // 60)


def load_overview(pages: tuple[str, ...] = (), loads: int = LOADS, budget: float | None = None) -> dict[str, Any]:
    """Load admin pages (bench/overview.py's PAGES; by default the overview per period) ``loads``
    times each in a process with the admin; its JSON. ``budget``: seconds of loads per page."""
    code_dir = os.environ.get("BENCH_CODE_DIR", str(REPO))
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.admin_settings")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "bench.overview", str(loads), *pages,
         *(["--budget", str(budget)] if budget is not None else [])],
        cwd=code_dir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench.overview failed ({result.returncode}): {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))
