"""Section H's measurements made on the harness's own connection: the plain claim
(django_jobs.db.claims) with queued rows of a name no code registers ahead of runnable ones, as
during a rolling deploy when newer code enqueues a job older workers don't have.

Imported only when the measured code's claim sets such rows aside (db.SETS_ASIDE).
"""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction
from django.utils import timezone

from django_jobs.db import claims
from django_jobs.db.connection import WORKER_SESSION
from django_jobs.registry import registry

from . import db
from .gated import CLAIM_REPEATS, CLAIM_WARMUP, WANT, claim_figures

READY_INDEX = "django_jobs_ready_idx"
#: A job name no code registers: what a newer release enqueues while older workers still run.
UNKNOWN_NAME = "bench.not_in_this_release"
#: Above bench.noop's default, so the unknown rows come first in claim order.
UNKNOWN_PRIORITY = 10
#: The claim size while setting the unknown rows aside, as a worker with work to catch up on asks.
SET_ASIDE_LIMIT = 100


def seed_unknown(n: int) -> None:
    """Insert ``n`` queued rows of UNKNOWN_NAME, ahead of bench.noop's in claim order."""
    db.seed(db.JOB_TABLE, n, name=UNKNOWN_NAME, priority=UNKNOWN_PRIORITY)


def set_aside_count() -> int:
    """Queued rows of UNKNOWN_NAME that a claim has set aside (parked_at set)."""
    return db.scalar(
        f"SELECT count(*) FROM {db.JOB_TABLE} WHERE name = %s AND parked_at IS NOT NULL",
        [UNKNOWN_NAME],
    )


def _claim(limit: int) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    # claim_and_park() is what claims.claim() runs once it has the names; it also says what it set
    # aside, which the figures check.
    return claims.claim_and_park(
        "default", worker_id="bench:claim", limit=limit, now=timezone.now(), names=registry.names()
    )


def time_claims() -> dict[str, Any]:
    """The plain claim of WANT jobs, CLAIM_REPEATS times (after CLAIM_WARMUP), each in a
    transaction rolled back, on a connection set up as a worker's; its times in ms, how many jobs
    each took and how many rows each set aside (rolled back too)."""
    times, claimed, parked = [], [], []
    for n in range(CLAIM_WARMUP + CLAIM_REPEATS):
        with transaction.atomic():
            db.execute(WORKER_SESSION)
            started = time.perf_counter()
            rows, aside = _claim(WANT)
            elapsed = time.perf_counter() - started
            transaction.set_rollback(True)
        if n >= CLAIM_WARMUP:
            times.append(elapsed * 1000)
            claimed.append(len(rows))
            parked.append(len(aside))
    wrong = [row["name"] for row in rows if row["name"] == UNKNOWN_NAME]
    if wrong:
        raise RuntimeError(f"the plain claim took {len(wrong)} job(s) of {UNKNOWN_NAME}, which no code registers")
    return {
        **claim_figures(times),
        "jobs_per_claim": sorted(set(claimed)),
        "set_aside_per_claim": sorted(set(parked)),
    }


def set_aside(limit: int = SET_ASIDE_LIMIT, most: int = 100_000) -> dict[str, Any]:
    """Claim as a worker would until a claim would take a runnable job: each claim of ``limit``
    that meets only unknown rows sets them aside and commits; the first that would claim a job is
    rolled back. Times in ms from the statement to the end of its transaction (its commit)."""
    times: list[float] = []
    aside = 0
    while True:
        with transaction.atomic():
            db.execute(WORKER_SESSION)
            started = time.perf_counter()
            rows, parked = _claim(limit)
            if rows:
                transaction.set_rollback(True)
        elapsed = (time.perf_counter() - started) * 1000
        if rows:
            break
        if not parked:
            raise RuntimeError("a claim found neither a runnable job nor an unknown row to set aside")
        times.append(elapsed)
        aside += len(parked)
        if len(times) >= most:
            raise RuntimeError(f"still setting rows aside after {most:,} claims")
    return {
        "claims": len(times),
        "limit": limit,
        "set_aside": aside,
        "total_ms": sum(times),
        "max_ms": max(times, default=0.0),
        "times_ms": times,
        # The claim that met runnable jobs (rolled back): it claimed, and set aside what was left.
        "last_claim": {"ms": elapsed, "claimed": len(rows), "set_aside": len(parked)},
    }


def claim_plan() -> dict[str, Any]:
    """The plain claim's plan with values and as a generic plan, under a worker's session settings
    (what runs) and under PostgreSQL's defaults (a worker behind PgBouncer, LISTEN_NOTIFY off,
    which skips them): whether each walks django_jobs_ready_idx, and whether any has a Seq Scan."""
    found = {}
    for setting, session in (("worker_session", WORKER_SESSION), ("default_settings", None)):
        plan = db.explain(*db.claim_statement(limit=WANT), READY_INDEX, session=session)
        plan["seq_scan"] = "Seq Scan" in plan["plan"] or "Seq Scan" in plan["generic_plan"]
        plan["index_walk"] = plan["uses_index"] and not plan["seq_scan"]
        found[setting] = plan
    return found


def claim_reads(limit: int = SET_ASIDE_LIMIT) -> dict[str, Any]:
    """One claim of ``limit`` under EXPLAIN (ANALYZE, BUFFERS), rolled back, a worker's settings."""
    return db.claim_reads(*db.claim_statement(limit=limit))
