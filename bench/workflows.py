"""Section I's parts (workflows, issue 15): a fan-in's drain against a plain one, the time from
the last upstream outcome to the downstream job's start, and the claim's time with waiting rows.

Everything here runs in the harness process on Django's connection (autocommit).
"""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import db
from .report import percentile

try:  # a run measuring (--at) a commit from before workflows has none of this
    from django_jobs.db import workflows as _workflows
    from django_jobs.db.connection import WORKER_SESSION

    DEPENDENCY_TABLE: str | None = _workflows.DEPENDENCY_TABLE
except ImportError:
    DEPENDENCY_TABLE = None
    WORKER_SESSION = ""

#: Queued jobs the claim is timed over, and claims timed (after a warm-up).
CLAIM_QUEUED = 1_000
CLAIM_WARMUP, CLAIM_REPEATS = 20, 200
#: Jobs each claim takes (a worker with 4 idle children).
CLAIM_LIMIT = 4


def reset() -> None:
    db.reset()
    if DEPENDENCY_TABLE:
        db.execute(f"TRUNCATE {DEPENDENCY_TABLE}")


def seed_plain(n: int) -> None:
    """``n`` queued no-op jobs, enqueued as a fan-in's members are (one enqueue_many())."""
    from .benchapp.jobs import noop

    noop.enqueue_many([[] for _ in range(n)])


def seed_fan_in(n: int) -> int:
    """``n`` queued no-op jobs and one job waiting on all of them; return the waiting job's id."""
    from .benchapp.jobs import noop

    members = noop.enqueue_many([[] for _ in range(n)])
    with transaction.atomic():
        return noop.using(after=members).enqueue().pk


def release_delay_ms(downstream: int) -> float:
    """The downstream job's start (its claim) minus the last of its upstream jobs' outcomes, ms."""
    started, last = db.execute(
        f"SELECT (SELECT extract(epoch FROM started_at) FROM {db.JOB_TABLE} WHERE id = %(d)s), "
        f"(SELECT extract(epoch FROM max(j.finished_at)) FROM {DEPENDENCY_TABLE} AS e "
        f"JOIN {db.JOB_TABLE} AS j ON j.id = e.upstream_id WHERE e.downstream_id = %(d)s)",
        {"d": downstream},
    )[0]
    return (float(started) - float(last)) * 1000


def seed_waiting(n: int) -> None:
    """``n`` waiting no-op jobs (as enqueue(after=…) leaves them before their upstream jobs end)."""
    columns, exprs, params = db.row_template("queued")
    exprs = [
        "'waiting'" if column.strip('"') == "status" else "1" if column.strip('"') == "pending_upstream" else expr
        for column, expr in zip(columns, exprs)
    ]
    db.execute(
        f"INSERT INTO {db.JOB_TABLE} ({', '.join(columns)}) "
        f"SELECT {', '.join(exprs)} FROM generate_series(1, %(n)s) AS g",
        {**dict(params), "n": n},
    )


def time_claims() -> dict[str, Any]:
    """The plain claim of CLAIM_LIMIT jobs, timed CLAIM_REPEATS times (after CLAIM_WARMUP), each
    in a transaction rolled back, on a connection set up as a worker's; times in ms."""
    from django_jobs.db import claims

    times = []
    for n in range(CLAIM_WARMUP + CLAIM_REPEATS):
        with transaction.atomic():
            db.execute(WORKER_SESSION)
            started = time.perf_counter()
            rows = claims.claim("default", worker_id="bench:claim", limit=CLAIM_LIMIT, now=timezone.now())
            elapsed = time.perf_counter() - started
            transaction.set_rollback(True)
        if len(rows) != CLAIM_LIMIT:
            raise RuntimeError(f"the claim took {len(rows)} jobs, not {CLAIM_LIMIT}")
        if n >= CLAIM_WARMUP:
            times.append(elapsed * 1000)
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "min_ms": min(times),
            "claims": len(times), "times_ms": times}
