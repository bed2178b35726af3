"""Section K's parts (realistic mixes, issue 19): jobs that each write a row, four queues of short
and long jobs on the same workers, and a burst of enqueues from many processes while workers drain.

Runs in the harness process on Django's connection (autocommit), but for the burst's enqueuers,
forked processes that each open their own connection, as section E's raw loops do.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import time
from typing import Any

from django.db import connection, connections

from . import db
from .ceiling import run_together
from .report import percentile

#: The four queues: each one's job duration (seconds; None: drawn for each job from the other
#: three), and its jobs enqueued per second. Workers run 4 jobs at once (2 processes of one child
#: per CPU, on 2 CPUs); these keep about 2.3 of them busy on average, the 1 s queue one of them.
QUEUES: dict[str, float | None] = {"k-1ms": 0.001, "k-50ms": 0.05, "k-1s": 1.0, "k-mixed": None}
RATES = {"k-1ms": 50.0, "k-50ms": 10.0, "k-1s": 1.0, "k-mixed": 2.0}
#: The queue whose pickup is reported: the short jobs, among long ones.
SHORT_QUEUE = "k-1ms"
#: A queue starves when one of its jobs waits longer than this from its commit to its start (five
#: of the longest jobs back to back), or when it finishes no job during the load.
STARVE_AFTER = 5.0
#: Processes enqueueing the burst.
BURST_PROCESSES = 8

_FORK = multiprocessing.get_context("fork")


# -- ORM writes -----------------------------------------------------------------------------------


def seed_counters(n: int) -> None:
    """Counter rows 1..n, each at 0 (bench.orm_write's targets)."""
    from .benchapp.models import Counter

    table = Counter._meta.db_table
    db.execute(f"TRUNCATE {table}")
    db.execute(f"INSERT INTO {table} (id, counter) SELECT g, 0 FROM generate_series(1, %s) AS g", [n])
    db.analyze(table)


def enqueue_writes(n: int) -> None:
    """One queued bench.orm_write job per Counter row, with one enqueue_many()."""
    from .benchapp.jobs import orm_write

    orm_write.enqueue_many([[i] for i in range(1, n + 1)])


def counters_not_once(n: int) -> int:
    """How many of Counter rows 1..n don't read what their bench.orm_write job's status says: 1
    once it succeeded, else 0 (a drain stopped by its budget leaves jobs queued). A row without a
    job, or a job without a row, counts too."""
    from .benchapp.jobs import orm_write
    from .benchapp.models import Counter

    return db.scalar(
        f"SELECT count(*) FROM {Counter._meta.db_table} AS c "
        f"FULL JOIN (SELECT (args->>0)::bigint AS n, status FROM {db.JOB_TABLE} WHERE name = %s) AS j "
        "ON j.n = c.id "
        "WHERE c.id IS NULL OR j.n IS NULL "
        "OR c.counter IS DISTINCT FROM (CASE WHEN j.status = 'succeeded' THEN 1 ELSE 0 END)",
        [orm_write.name],
    ) + abs(n - db.scalar(f"SELECT count(*) FROM {Counter._meta.db_table}"))


# -- four queues ----------------------------------------------------------------------------------


def schedule(window: float, rng: random.Random) -> list[tuple[float, str, float]]:
    """The load: (seconds from the start, queue, job duration), each queue's jobs evenly spaced at
    its rate (the first half a gap in), the mixed queue's durations drawn by ``rng``."""
    fixed = [d for d in QUEUES.values() if d is not None]
    events = []
    for queue, duration in QUEUES.items():
        gap = 1 / RATES[queue]
        for k in range(int(window * RATES[queue])):
            events.append((gap / 2 + k * gap, queue, duration if duration is not None else rng.choice(fixed)))
    return sorted(events)


def enqueue_load(events: list[tuple[float, str, float]]) -> dict[int, tuple[str, float]]:
    """Enqueue ``events`` on time, one enqueue() per transaction; each job's queue and the time its
    enqueue() returned (after the COMMIT)."""
    from .benchapp.jobs import sleep

    definitions = {queue: sleep.using(queue=queue) for queue in QUEUES}
    committed: dict[int, tuple[str, float]] = {}
    begin = time.monotonic()
    for at, queue, duration in events:
        pause = begin + at - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the enqueues, not waiting for an outcome
        job = definitions[queue].enqueue(duration)
        committed[job.id] = (queue, time.time())
    return committed


def queue_figures(
    committed: dict[int, tuple[str, float]], window: tuple[float, float], observed: float
) -> dict[str, dict[str, Any]]:
    """Per queue, from the rows: jobs enqueued and done, jobs finished per second within
    ``window`` (Unix times of the load's start and end), the wait from each job's commit to its
    body's start (bench.sleep returns that), and the longest wait, counting a job that never
    started as waiting until ``observed``."""
    rows = db.execute(
        f"SELECT id, status, result, extract(epoch FROM finished_at) FROM {db.JOB_TABLE} "
        "WHERE id = ANY(%s)",
        [list(committed)],
    )
    start, end = window
    found: dict[str, dict[str, Any]] = {
        q: {"enqueued": 0, "succeeded": 0, "finished_in_window": 0, "waits_ms": [], "not_started": 0}
        for q in QUEUES
    }
    for job_id, status, result, finished_at in rows:
        queue, commit = committed[job_id]
        f = found[queue]
        f["enqueued"] += 1
        if status == "succeeded":
            f["succeeded"] += 1
            body_started = float(json.loads(result) if isinstance(result, str) else result)
            f["waits_ms"].append((body_started - commit) * 1000)
            if start <= float(finished_at) <= end:
                f["finished_in_window"] += 1
        else:
            f["not_started"] += 1
            f["waits_ms"].append((observed - commit) * 1000)  # still waiting (or running) then
    for f in found.values():
        waits = f.pop("waits_ms")
        f["per_second"] = f["finished_in_window"] / (end - start)
        f["longest_wait_s"] = max(waits) / 1000 if waits else None
        if waits:
            f.update({f"pickup_{q}_ms": percentile(waits, int(q[1:])) for q in ("p50", "p99")})
        f["starved"] = not f["finished_in_window"] or (f["longest_wait_s"] or 0) > STARVE_AFTER
    return found


# -- the burst -------------------------------------------------------------------------------------


def _enqueuer(first: int, step: int, n: int, barrier: Any, ends: Any) -> None:
    from .benchapp.jobs import orm_write

    connection.ensure_connection()  # connected before the start, as a view's process is
    barrier.wait()
    for i in range(first, n + 1, step):
        orm_write.enqueue(i)  # autocommit: one transaction per job, as a view enqueues
    ends.put(time.time())
    connection.close()


def burst(n: int, processes: int = BURST_PROCESSES) -> tuple[float, float]:
    """Enqueue bench.orm_write(1..n) from ``processes`` forked processes at once, one enqueue() per
    transaction, each process every ``processes``-th row; the Unix times when they started
    together and when the last one's last enqueue returned."""
    connections.close_all()  # the children must not inherit Django's open connection
    barrier, ends = _FORK.Barrier(processes + 1), _FORK.Queue()
    children = [
        _FORK.Process(target=_enqueuer, args=(first, processes, n, barrier, ends))
        for first in range(1, processes + 1)
    ]
    return run_together(children, barrier, ends, time.time)


def burst_outcome(n: int, started: float, last_enqueue: float) -> dict[str, Any]:
    """What the burst's rows say: jobs done by the last enqueue, the last outcome's time, and the
    jobs that did not end succeeded after exactly one attempt."""
    done_by_then, last_outcome, not_once = db.execute(
        f"SELECT count(*) FILTER (WHERE finished_at <= to_timestamp(%s)), "
        f"extract(epoch FROM max(finished_at)), "
        f"count(*) FILTER (WHERE status <> 'succeeded' OR attempts <> 1) FROM {db.JOB_TABLE}",
        [last_enqueue],
    )[0]
    rows = db.scalar(f"SELECT count(*) FROM {db.JOB_TABLE}")
    seconds = last_enqueue - started
    return {
        "enqueue_rate": n / seconds,
        "drain_rate_during": done_by_then / seconds,
        "done_by_last_enqueue": done_by_then,
        "tail_seconds": float(last_outcome) - last_enqueue,
        "enqueue_seconds": seconds,
        "jobs_not_once": not_once + abs(rows - n),
        "rows_not_once": counters_not_once(n),
    }
