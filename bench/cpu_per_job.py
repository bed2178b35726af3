"""Where a drain's CPU goes, per job: ``python -m bench.cpu_per_job [--jobs N] [--processes P] [--at REV]``.

Seeds N queued no-op jobs (as section B does; with ``--keys K``, section G's over K keys with
``concurrency=1`` per key, or with ``--keys K --unlimited`` the same jobs unlimited), drains them
with P ``runjobs --burst`` processes, and reads the CPU time (user + system, from ``/proc``) of
every process involved while they run: each worker's main process, its fork server and children,
and the PostgreSQL backends of the bench database. The same with no job to drain gives what
starting and stopping cost, which is taken off. Prints microseconds of CPU per job for each kind
(autovacuum's workers on their own, when one ran), the drain's rate, and how many jobs a commit
carried (the database's committed transactions, so the round trips and anything else the
workers committed).

Unlike the rates, CPU per job hardly moves with the machine's load (a busy machine slows a
drain by making it wait, not by making it do more), which makes this the figure to compare
two commits with on a shared machine. Run it from the repository with the bench's venv, after
``bench/run.py`` has made one:

    .venv/bin/python -m bench.cpu_per_job --jobs 20000 --processes 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SAMPLE_EVERY = 0.02  # seconds: a process that exits loses at most this much of its CPU time


def _processes() -> dict[int, tuple[int, str, int]]:
    """pid → (parent pid, command line, CPU clock ticks so far), for every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry)] = (int(fields[1]), command, int(fields[11]) + int(fields[12]))
    return found


def measure(
    url: str, database: str, jobs: int, processes: int, code_dir: str, raw: bool = False, keys: int = 0,
    unlimited: bool = False,
) -> dict[str, Any]:
    import django
    from django.db import connection

    django.setup()
    from django.core.management import call_command

    from . import db

    call_command("migrate", verbosity=0)
    db.create_ceiling_table()
    table = db.CEILING_TABLE if raw else db.JOB_TABLE
    db.reset()
    if keys:  # section G's jobs, spread over the keys (bench.keyed: concurrency=1 per key)
        from . import gated
        from .benchapp.limited import keyed, unkeyed

        gated.enqueue_keyed(unkeyed if unlimited else keyed, gated.spread(jobs, keys))
    else:
        db.seed(table, jobs)
    db.vacuum_analyze(table)
    commits = _commits(database)
    connection.close()
    if raw:  # section E's raw loop: forked from this process, in a thread so that we can sample
        import threading

        from . import ceiling

        before = set(_processes())
        loop = threading.Thread(target=ceiling.drain, args=(url, processes, 600.0))
        loop.start()
        running = loop.is_alive
        roots: set[int] = set()
    else:
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.settings", BENCH_DATABASE_URL=url)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        workers = [
            subprocess.Popen([sys.executable, "-m", "django", "runjobs", "--burst"], cwd=code_dir, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            for _ in range(processes)
        ]
        roots = {w.pid for w in workers}

        def running() -> bool:
            return any(w.poll() is None for w in workers)

    seen: dict[int, tuple[str, int]] = {}
    while running():
        found = _processes()
        if raw:
            roots = {pid for pid, (parent, _, _) in found.items() if parent == os.getpid() and pid not in before}
        tree, grew = set(roots), True
        while grew:
            grew = False
            for pid, (parent, _, _) in found.items():
                if parent in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        for pid, (_, command, ticks) in found.items():
            if pid in roots:
                seen[pid] = ("main", ticks)
            elif pid in tree:
                seen[pid] = ("children", ticks)
            elif command.startswith("postgres: autovacuum") and database in command.split():
                seen[pid] = ("autovacuum", ticks)
            elif command.startswith("postgres:") and f" {database} " in command:
                seen[pid] = ("postgres", ticks)
        time.sleep(SAMPLE_EVERY)
    done, span = db.execute(
        "SELECT count(*), extract(epoch FROM max(finished_at) - min(started_at)) "
        f"FROM {table} WHERE status = 'succeeded'"
    )[0]
    commits = _commits(database) - commits
    connection.close()
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for kind, ticks in seen.values():
        seconds[kind] = seconds.get(kind, 0.0) + ticks / tick
    return {"jobs": done, "rate": done / float(span) if span else None, "cpu_seconds": seconds, "commits": commits}


def _commits(database: str) -> int:
    """Transactions committed in the database so far (the statistics lag by up to a second)."""
    from . import db

    time.sleep(1.0)  # PostgreSQL flushes a backend's counters at most once a second (PGSTAT_MIN_INTERVAL)
    db.execute("SELECT pg_stat_clear_snapshot()")
    return int(db.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [database])[0][0])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--database", default="django_jobs_bench_cpu")
    parser.add_argument("--at", help="measure django_jobs/ as committed at this revision")
    parser.add_argument("--raw", action="store_true", help="section E's raw loop instead of runjobs")
    parser.add_argument("--keys", type=int, default=0,
                        help="section G's jobs over this many keys, concurrency=1 per key (bench.keyed)")
    parser.add_argument("--unlimited", action="store_true",
                        help="with --keys: the same jobs without the limit (bench.unkeyed)")
    args = parser.parse_args(argv)
    server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres").rsplit("/", 1)[0]
    url = f"{server}/{args.database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    os.environ["BENCH_DATABASE_URL"] = url
    subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", args.database], check=False)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", args.database], check=True)
    from . import code

    exported = code.export(args.at)[0] if args.at else None
    code_dir = str(exported or REPO)
    if exported:
        sys.path.insert(0, code_dir)
    try:
        # A worker's start and exit (~0.5 s of CPU: Python, Django, the registry) are no job's:
        # measured with nothing to drain, and taken off.
        idle = measure(url, args.database, 0, args.processes, code_dir, args.raw)
        fixed = idle["cpu_seconds"]
        found = measure(url, args.database, args.jobs, args.processes, code_dir, args.raw,
                        keys=args.keys, unlimited=args.unlimited)
    finally:
        if exported:
            shutil.rmtree(exported, ignore_errors=True)
    cpu = {kind: max(0.0, spent - fixed.get(kind, 0.0)) / max(found["jobs"], 1) * 1e6
           for kind, spent in found["cpu_seconds"].items()}
    cpu["total"] = sum(cpu.values())
    print(f"{found['jobs']:,} jobs, {args.processes} process(es), {found['rate']:,.0f} jobs/s; CPU per job: "
          + ", ".join(f"{kind} {cpu[kind]:.0f} µs" for kind in ("main", "children", "postgres", "autovacuum", "total") if kind in cpu)
          + f"; {found['jobs'] / max(found['commits'] - idle['commits'], 1):.1f} jobs a commit")
    subprocess.run(["dropdb", "--if-exists", "-h", "127.0.0.1", "-U", "postgres", args.database], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
