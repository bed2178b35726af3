"""Section G's measurements made on the harness's own connection: the gated claim's time and plan
(django_jobs.db.gates), rows of the limited jobs, and what a rate let through.

Imported only when the measured code has flow control (see benchapp/jobs.py).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from django_jobs.db import gates
from django_jobs.db.connection import WORKER_SESSION

from . import db
from .report import percentile

KEYED_INDEX = "django_jobs_keyed_idx"
#: Jobs one gated claim asks for: a worker's idle children (one per CPU here, so 2).
WANT = 2
#: Claims timed per table (after a few that are not), each rolled back.
CLAIM_REPEATS = 200
CLAIM_WARMUP = 5
#: enqueue_many() calls of at most this many jobs, to seed the held rows.
SEED_CHUNK = 10_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- rows ------------------------------------------------------------------------------------------


def enqueue_keyed(definition: Any, keys: list[int], **options: Any) -> None:
    """Enqueue one job of ``definition`` (bench.keyed or bench.unkeyed) per item of ``keys``."""
    target = definition.using(**options) if options else definition
    for start in range(0, len(keys), SEED_CHUNK):
        target.enqueue_many([[k] for k in keys[start : start + SEED_CHUNK]])


def spread(n: int, keys: int) -> list[int]:
    """``n`` keys from ``0 … keys-1`` taken in turn, so every key has its share in claim order."""
    return [i % keys for i in range(n)]


def mark_running(key: str) -> int:
    """Mark the first queued job of ``key`` running, as a worker's claim would; return its id."""
    return db.scalar(
        f"UPDATE {db.JOB_TABLE} SET status = 'running', attempts = 1, started_at = now(), "
        f"worker_id = 'bench:holder' WHERE id = (SELECT min(id) FROM {db.JOB_TABLE} "
        f"WHERE concurrency_key = %s) RETURNING id",
        [key],
    )


def key_overlaps(name: str) -> int:
    """Jobs of ``name`` that started before the previous job of their concurrency key finished
    (the limit is 1 per key, so this must be 0)."""
    return db.scalar(
        f"SELECT count(*) FROM (SELECT started_at, lag(finished_at) OVER "
        f"(PARTITION BY concurrency_key ORDER BY started_at) AS previous "
        f"FROM {db.JOB_TABLE} WHERE name = %s) AS s WHERE started_at < previous",
        [name],
    )


def start_times(name: str) -> list[int]:
    """When each job of ``name`` started (its claim), in microseconds since the epoch, sorted."""
    rows = db.execute(
        f"SELECT started_at FROM {db.JOB_TABLE} WHERE name = %s AND started_at IS NOT NULL "
        f"ORDER BY started_at",
        [name],
    )
    return [(started - _EPOCH) // _MICROSECOND for (started,) in rows]


# -- what a rate let through -----------------------------------------------------------------------

_SECOND = 1_000_000  # µs
_MICROSECOND = datetime.resolution


def most_in_window(starts: list[int], window: int = _SECOND) -> int:
    """The most starts in any half-open window ``[t, t + window)`` (µs; ``starts`` sorted).

    Half-open like the rate's own window, which counts the starts after ``now − period``.
    """
    most, first = 0, 0
    for last, t in enumerate(starts):
        while starts[first] <= t - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def achieved_rate(starts: list[int]) -> float | None:
    """Starts per second over the whole seconds from the first start: the starts in
    ``[first, first + K s)`` over ``K``, with K the whole seconds the starts span.

    Not (n − 1) / (last − first): a sliding-window rate lets its first window's starts through
    at once, which that would count as a second's worth too many.
    """
    if len(starts) < 2:
        return None
    whole = (starts[-1] - starts[0]) // _SECOND
    if whole < 1:
        return None
    end = starts[0] + whole * _SECOND
    return sum(1 for t in starts if t < end) / whole


def per_second(starts: list[int]) -> list[int]:
    """Starts in each consecutive second from the first."""
    counts: list[int] = []
    for t in starts:
        second = (t - starts[0]) // _SECOND
        while len(counts) <= second:
            counts.append(0)
        counts[second] += 1
    return counts


# -- the gated claim -------------------------------------------------------------------------------


def candidates_params(limits: Any, want: int = WANT) -> dict[str, Any]:
    """gates.CANDIDATES' values as claim_gated() gives them for a worker of every queue."""
    return {
        "now": timezone.now(),
        "queues": [],
        "paused_queues": [],
        "paused_names": [],
        "key_cursor": "",
        "sequence_cursor": "",
        "continue_names": sorted(limits.sequence_continue),
        "per_key": want,
        "limited_queues": limits.limited_queues,
        "limited_names": limits.limited_names,
    }


def usage_params(keys: list[str]) -> dict[str, Any]:
    """gates.USAGE's values for a claim whose candidates hold the concurrency gates ``keys``."""
    return {
        "keys": sorted(keys),
        "queues": [],
        "sequences": [],
        "start_keys": [],
        "periods": [],
        "continue_names": [],
        "lost_after": 60.0,
        "worker_queues": [],
    }


def time_claims(held_key: str | None = None) -> dict[str, Any]:
    """Run gates.claim_gated() for WANT jobs CLAIM_REPEATS times (after CLAIM_WARMUP), each in a
    transaction rolled back, on a connection set up as a worker's; its times in ms and what the
    claims took. None of the claimed jobs may be of ``held_key``."""
    limits = gates.limits_in_effect("default")
    times, claimed = [], []
    for n in range(CLAIM_WARMUP + CLAIM_REPEATS):
        with transaction.atomic():
            db.execute(WORKER_SESSION)
            started = time.perf_counter()
            claim = gates.claim_gated(
                "default", worker_id="bench:claim", want=WANT, now=timezone.now(), limits=limits
            )
            elapsed = time.perf_counter() - started
            transaction.set_rollback(True)
        if n >= CLAIM_WARMUP:
            times.append(elapsed * 1000)
            claimed.append(len(claim.rows))
    if held_key is not None:
        ids = [row["id"] for row in claim.rows]
        wrong = db.scalar(
            f"SELECT count(*) FROM {db.JOB_TABLE} WHERE id = ANY(%s) AND concurrency_key = %s",
            [ids, held_key],
        )
        if wrong:
            raise RuntimeError(f"the gated claim took {wrong} job(s) of the held key {held_key}")
    return {**claim_figures(times), "jobs_per_claim": sorted(set(claimed))}


def claim_figures(times: list[float]) -> dict[str, Any]:
    """p50, p95 and min of claim times in ms (and the times), as G's and H's claims report them."""
    return {
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "min_ms": min(times),
        "claims": len(times),
        "times_ms": times,
    }


def merge_times(*timed: dict[str, Any]) -> dict[str, Any]:
    """The figures of time_claims() over the claims of several of its results together."""
    times = [t for found in timed for t in found["times_ms"]]
    return {
        **claim_figures(times),
        "jobs_per_claim": sorted({n for found in timed for n in found["jobs_per_claim"]}),
        "p50_ms_each": [found["p50_ms"] for found in timed],
    }


def candidates_plan() -> dict[str, Any]:
    """gates.CANDIDATES' plan with values and as a generic plan, under a worker's session settings
    (what runs) and under PostgreSQL's defaults (a worker behind PgBouncer, LISTEN_NOTIFY off,
    which skips them): whether each walks django_jobs_keyed_idx, and whether any has a Seq Scan."""
    limits = gates.limits_in_effect("default")
    found = {}
    for setting, session in (("worker_session", WORKER_SESSION), ("default_settings", None)):
        plan = db.explain(gates.CANDIDATES, candidates_params(limits), KEYED_INDEX, session=session)
        plan["seq_scan"] = "Seq Scan" in plan["plan"] or "Seq Scan" in plan["generic_plan"]
        plan["index_walk"] = plan["uses_index"] and not plan["seq_scan"]
        found[setting] = plan
    return found


def analyze_statements(keys: list[str]) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of gates.CANDIDATES and gates.USAGE (rolled back, a worker's
    session settings): where a gated claim's time goes."""
    limits = gates.limits_in_effect("default")
    return {
        "candidates": db.claim_reads(gates.CANDIDATES, candidates_params(limits)),
        "usage": db.claim_reads(gates.USAGE, usage_params(keys)),
    }

