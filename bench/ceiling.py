"""Section E, the ceiling: the same work as django_jobs done by a bare psycopg loop.

No Django, no child per job, no signals: each process claims up to ``BATCH`` rows with the same
CTE shape as django_jobs' claim (``SELECT … FOR UPDATE SKIP LOCKED LIMIT n`` feeding an
``UPDATE … RETURNING``), calls each job's function, and writes the batch's outcomes with one
``UPDATE … WHERE id = ANY(%s)`` that appends a history entry as the worker does. Inserts are
one row per transaction, with the NOTIFY in the same statement, like ``enqueue()``. It runs on
``bench_ceiling_job``, a ``LIKE django_jobs_job INCLUDING ALL`` copy (same columns and indexes),
and the inserts also on ``bench_lean_job``, a table with only the columns and index a queue needs;
or, for section L, on ``django_jobs_job`` itself (the same big table under both loops).

Processes are forked from the harness: they open their own psycopg connections and touch
nothing Django holds open.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import connections

from django_jobs.models import JobStatus
from django_jobs.registry import registry

from .db import CEILING_TABLE, LEAN_TABLE, ready_predicate, row_template

BATCH = 100
_FORK = multiprocessing.get_context("fork")
_T = CEILING_TABLE


def claim_sql(table: str = _T) -> str:
    """The raw loop's claim: its WHERE is the ready index's own predicate, read from the table.

    Spelled out as ``status IN ('queued', 'retrying')`` it no longer implies the index's
    predicate since flow control narrowed it to rows without keys, and the claim became a
    sequential scan and a sort of the whole table. Read from the catalog, it fits the schema of
    whichever commit the run measures.
    """
    t = table
    return f"""
WITH claimable AS (
    SELECT id FROM {t} WHERE {ready_predicate(t)} AND run_at <= now()
    ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE {t} SET status = '{JobStatus.RUNNING.value}', attempts = attempts + 1, started_at = now(),
    worker_id = %(worker_id)s
FROM claimable WHERE {t}.id = claimable.id
RETURNING {t}.id, {t}.name, {t}.args, {t}.kwargs
"""


def complete_sql(table: str = _T) -> str:
    """The raw loop's outcome write: one statement for a batch, a history entry appended."""
    return f"""
UPDATE {table} SET status = '{JobStatus.SUCCEEDED.value}', finished_at = now(), worker_id = '',
    last_error = '', result = NULL,
    history = history || jsonb_build_array(jsonb_build_object(
        'attempt', attempts, 'worker', worker_id, 'started_at', started_at,
        'finished_at', now(), 'outcome', 'succeeded'))
WHERE id = ANY(%s) AND status = '{JobStatus.RUNNING.value}' AND worker_id = %s
"""


def insert_statement() -> tuple[str, dict[str, Any]]:
    """One enqueue()-shaped row and its NOTIFY, as a single statement."""
    columns, exprs, params = row_template("queued")
    sql = (
        f"WITH inserted AS (INSERT INTO {_T} ({', '.join(columns)}) VALUES ({', '.join(exprs)}) "
        f"RETURNING queue) SELECT pg_notify('bench_ceiling', queue) FROM inserted"
    )
    return sql, dict(params)


# The lean table's row (issue 19): the same job, with only what a queue needs, and its NOTIFY.
LEAN_INSERT = (
    f"WITH inserted AS (INSERT INTO {LEAN_TABLE} (name, args, queue, priority, run_at, status) "
    "VALUES (%(name)s, %(args)s::jsonb, %(queue)s, %(priority)s, now(), 'queued') RETURNING queue) "
    "SELECT pg_notify('bench_ceiling', queue) FROM inserted"
)


def lean_statement() -> tuple[str, dict[str, Any]]:
    """One job in the lean table and its NOTIFY, as a single statement."""
    _, _, params = row_template("queued")
    values = dict(params)
    return LEAN_INSERT, {k: values[k] for k in ("name", "args", "queue", "priority")}


def _insert_loop(
    url: str, sql: str, params: dict[str, Any], n: int, barrier: Any, ends: Any
) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        barrier.wait()
        for _ in range(n):
            conn.execute(sql, params)
        ends.put(time.perf_counter())


def insert_rate(url: str, n: int, processes: int, *, lean: bool = False) -> float:
    """Jobs/s inserting ``n`` rows one per transaction from ``processes`` processes at once,
    into the job table's copy, or with ``lean`` into the lean table."""
    sql, params = lean_statement() if lean else insert_statement()
    connections.close_all()  # the children must not inherit Django's open connection
    barrier, ends = _FORK.Barrier(processes + 1), _FORK.Queue()
    shares = [n // processes + (1 if i < n % processes else 0) for i in range(processes)]
    children = [
        _FORK.Process(target=_insert_loop, args=(url, sql, params, share, barrier, ends))
        for share in shares
    ]
    started, finished = run_together(children, barrier, ends, time.perf_counter)
    return n / (finished - started)


def run_together(children: list[Any], barrier: Any, ends: Any, clock: Callable[[], float]) -> tuple[float, float]:
    """Start forked ``children`` that meet at ``barrier`` and put the time they end on ``ends``;
    return when they started (``clock``, read once all met) and when the last one ended."""
    for child in children:
        child.start()
    barrier.wait(timeout=60)
    started = clock()
    finished = [ends.get(timeout=600) for _ in children]
    join(children)
    return started, max(finished)


def _drain_loop(
    url: str, claim: str, complete: str, worker_id: str, functions: dict[str, Callable[..., Any]]
) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            rows = conn.execute(claim, {"limit": BATCH, "worker_id": worker_id}).fetchall()
            if not rows:
                return
            done = []
            for job_id, name, args, kwargs in rows:
                functions[name](*args, **kwargs)
                done.append(job_id)
            conn.execute(complete, (done, worker_id))


def drain(url: str, processes: int, timeout: float, table: str = _T) -> None:
    """Run ``processes`` raw loops on ``table`` until none finds a ready row."""
    functions = {name: registry.lookup(name).func for name in registry.names()}
    claim, complete = claim_sql(table), complete_sql(table)
    connections.close_all()
    children = [
        _FORK.Process(target=_drain_loop, args=(url, claim, complete, f"bench-ceiling:{i}", functions))
        for i in range(processes)
    ]
    for child in children:
        child.start()
    join(children, timeout)


def _pickup_child(sock: socket.socket, other: socket.socket, results: Any) -> None:
    """The bare loop's child: reads claimed ids, one per line, and notes when each one "runs"."""
    other.close()  # (the loop's end: inherited, and the loop's exit must reach us as EOF)
    started: dict[int, float] = {}
    with sock, sock.makefile("rb") as lines:
        for line in lines:
            started[int(line)] = time.time()
    results.put(started)


def _pickup_loop(
    url: str, claim: str, sock: socket.socket, other: socket.socket, listening: Any, count: int
) -> None:
    """The bare loop's worker: one connection that LISTENs, claims one job per notification with
    a durable commit, and passes its id to the child, nothing else in between; until it has
    passed on ``count`` jobs.

    A notification that arrives while the claim runs is not kept for the next ``notifies()``
    (psycopg delivers it to handlers only): so after a second without one the loop claims what is
    there, and ends by counting, not on a last notification, which it could miss the same way.
    """
    other.close()
    passed = 0
    with sock, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("LISTEN bench_ceiling")
        listening.set()
        while passed < count:
            woken = next(iter(conn.notifies(timeout=1.0, stop_after=1)), None) is not None
            limit = 1 if woken else count - passed
            for (job_id, *_) in conn.execute(claim, {"limit": limit, "worker_id": "bench-ceiling:pickup"}):
                sock.sendall(b"%d\n" % job_id)
                passed += 1


def pickup(url: str, count: int, rate: float) -> list[float]:
    """C's probes through the bare loop: ``count`` rows inserted one per transaction with their
    NOTIFY at ``rate`` a second; return each one's commit → "first line" in ms.

    The floor for django_jobs' pickup on this machine: the same wake-ups (the notification, the
    claim and its commit, a child's socket) with no Python of ours between them.
    """
    claim = claim_sql()
    columns, exprs, params = row_template("queued")
    insert = (
        f"WITH inserted AS (INSERT INTO {_T} ({', '.join(columns)}) VALUES ({', '.join(exprs)}) "
        f"RETURNING id, queue) SELECT id, pg_notify('bench_ceiling', queue) FROM inserted"
    )
    values = dict(params)
    connections.close_all()
    ours, theirs = socket.socketpair()
    listening, results = _FORK.Event(), _FORK.Queue()
    child = _FORK.Process(target=_pickup_child, args=(theirs, ours, results))
    loop = _FORK.Process(target=_pickup_loop, args=(url, claim, ours, theirs, listening, count))
    child.start()
    loop.start()
    ours.close()
    theirs.close()
    committed: dict[int, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        if not listening.wait(60):
            raise RuntimeError("the bare pickup loop did not LISTEN within 60 s")
        begin = time.monotonic()
        for i in range(count):
            pause = begin + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing the inserts, not waiting for an outcome
            job_id = conn.execute(insert, values).fetchone()[0]  # type: ignore[index]
            committed[job_id] = time.time()  # autocommit: execute() returned after the COMMIT
    join([loop], timeout=120)
    started = results.get(timeout=60)
    join([child])
    missing = set(committed) - set(started)
    if missing:
        raise RuntimeError(f"the bare pickup loop never started {len(missing)} of {count} probes")
    return [(started[i] - committed[i]) * 1000 for i in committed]


def join(children: list[Any], timeout: float = 600.0) -> None:
    """Wait for forked ``children``; kill any still running after ``timeout`` and raise, as for
    any that exited with an error."""
    deadline = time.monotonic() + timeout
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
    alive = [c for c in children if c.is_alive()]
    for child in alive:
        child.kill()
        child.join(5)
    failed = [c.exitcode for c in children if c.exitcode]
    if alive:
        raise TimeoutError(f"{len(alive)} forked process(es) still running after {timeout:g}s")
    if failed:
        raise RuntimeError(f"forked process(es) exited with {failed}")
