"""What a worker's round trip costs PostgreSQL, per job and per statement:
``python -m bench.round_trip [--batches 20,400] [--jobs N] [--rounds R] [--at REV]``.

One process, no worker and no children: it seeds N queued no-op jobs (as section B does), then
drains them the way a worker's loop does, with ``claims.sync()``: each call writes the outcomes of
the jobs the previous one claimed (succeeded) and claims the next ``batch``. It reads the CPU time
of its PostgreSQL backend from ``/proc`` around the loop, so what it reports is the server's work
alone, not the client's or the waits. Each batch size is run ``rounds`` times, in turns, and the
least CPU per job is kept (a busy machine adds to it, never takes away). With two batch sizes or
more, a line through (1/batch, CPU per job) splits it into a cost per job and a cost per
statement: the statement's fixed part (its plan's start and end, the CTEs that have nothing to do)
and what each job adds.

With ``--at REV``, ``django_jobs/`` as committed at REV (the bench itself comes from the working
tree), on a database migrated by that code. ``--drop-index`` drops indexes of the job table after
migrating, to see what keeping each one up to date costs a job. Run it from the repository with
the bench's venv:

    .venv/bin/python -m bench.round_trip --batches 20,400 --rounds 5
    .venv/bin/python -m bench.round_trip --batches 20,400 --rounds 5 --at 4aba3d6
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _backend_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) the backend process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(jobs: int, batch: int) -> float:
    """Seed ``jobs`` queued jobs, drain them ``batch`` at a time; the backend's CPU seconds per job."""
    from django.db import connection
    from django.utils import timezone

    from django_jobs import lifecycle
    from django_jobs.db import claims
    from django_jobs.models import JobStatus

    from . import db
    from .benchapp.jobs import noop

    db.reset()
    db.seed(db.JOB_TABLE, jobs)
    db.vacuum_analyze(db.JOB_TABLE)
    # Older commits' sync() took neither ``names`` nor ``downstream``, and returned (written, claimed).
    claim_and_write: Any = claims.sync
    parameters = inspect.signature(claim_and_write).parameters
    named = "names" in parameters

    def sync(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
        extra: dict[str, Any] = {"names": [noop.name]} if named else {}
        if "downstream" in parameters:  # as the worker passes it
            extra["downstream"] = any(r.get("downstream", True) for r in rows)
        synced = claim_and_write("default", worker_id="bench-round-trip", outcomes=[succeeded(r) for r in rows],
                                 limit=limit, now=timezone.now(), **extra)
        return synced.claimed if named else synced[1]

    def succeeded(row: dict[str, Any]) -> Any:
        now = timezone.now()
        entry = {"attempt": row["attempt"], "outcome": "succeeded", "worker": "bench-round-trip",
                 "started_at": now.isoformat(), "duration": 0.0001}
        return claims.OutcomeWrite(row["id"], row["attempt"], now,
                                   lifecycle.Transition(JobStatus.SUCCEEDED, entry))

    rows = sync([], batch)  # (a claim alone: no outcome to write yet)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    before, done = _backend_cpu(pid), 0
    while rows:
        done += len(rows)
        rows = sync(rows, batch)
    spent = _backend_cpu(pid) - before
    if done != jobs:
        raise RuntimeError(f"drained {done:,} of {jobs:,} jobs")
    return spent / done


def fit(points: dict[int, float]) -> tuple[float, float] | None:
    """(µs per job, µs per statement) of the least-squares line through (1/batch, µs per job)."""
    if len(points) < 2:
        return None
    xs = [1 / b for b in points]
    ys = list(points.values())
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="20,400", help="batch sizes, comma-separated (default 20,400)")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs drained at each batch size")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each batch size; the least is kept")
    parser.add_argument("--database", default="django_jobs_bench_round_trip")
    parser.add_argument("--at", help="measure django_jobs/ as committed at this revision")
    parser.add_argument("--drop-index", default="", metavar="NAMES",
                        help="drop these indexes of the job table first, comma-separated (what each costs)")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres").rsplit("/", 1)[0]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    os.environ["BENCH_DATABASE_URL"] = f"{server}/{args.database}"
    subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", args.database], check=False)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", args.database], check=True)
    from . import code

    code_dir = code.export(args.at)[0] if args.at else None
    if code_dir:
        sys.path.insert(0, str(code_dir))
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        from . import db

        for index in filter(None, args.drop_index.split(",")):
            db.execute(f'DROP INDEX "{index}"')
        db.create_ceiling_table()  # (db.reset() empties it too)
        least: dict[int, float] = {}
        for _ in range(args.rounds):
            for batch in batches:
                per_job = drain(args.jobs, batch) * 1e6
                least[batch] = min(per_job, least.get(batch, per_job))
        from django.db import connections

        connections.close_all()
    finally:
        subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", args.database], check=False)
        if code_dir:
            shutil.rmtree(code_dir, ignore_errors=True)
    dropped = f", without {args.drop_index}" if args.drop_index else ""
    print(f"django_jobs at {args.at or 'the working tree'}{dropped}; PostgreSQL's CPU per job, the least of {args.rounds}:")
    for batch, per_job in least.items():
        print(f"  batch {batch:>4}: {per_job:5.1f} µs a job, {per_job * batch:7.0f} µs a statement")
    line = fit(least)
    if line:
        print(f"  so: {line[0]:.1f} µs a job + {line[1]:.0f} µs a statement")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
