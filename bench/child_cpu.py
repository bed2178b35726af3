"""A child's CPU per no-op job: ``.venv/bin/python -m bench.child_cpu [--rounds N] [--at REV]``.

Forks a child as a worker does (``child_main`` on one end of a socket pair), sends it batches of
100 ``bench.noop`` jobs, reads every reply, and takes the child's CPU time (user + system, from
``wait4()``) once it has exited. The part of a drain that a child costs, without the worker's
loop, the database or the other processes of a drain moving it: it is steadier than
``bench.cpu_per_job``'s children column, though still a timing. One more round runs the child
under ``cProfile`` and counts the Python calls it makes per job, which don't move with the
machine at all. No database is needed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from typing import Any

BATCH = 100  # jobs a batch line carries (a drain's batches are about this size: bench/cpu_per_job.py)


def run_child(batches: int, profile: bool = False) -> float:
    """Fork a child, have it run ``batches`` × BATCH no-op jobs; its CPU seconds (or, with
    ``profile``, the Python calls it made)."""
    from django_jobs.worker import protocol
    from django_jobs.worker.child import child_main

    jobs = [{"id": i, "name": "bench.noop", "queue": "default", "attempt": 1, "max_attempts": 3,
             "args_json": "[]", "kwargs_json": "{}"} for i in range(1, BATCH + 1)]
    line = protocol.batch_line(jobs, "default")
    ours, theirs = socket.socketpair()
    read, write = os.pipe()  # the profiled child's call count
    pid = os.fork()
    if pid == 0:  # the child
        ours.close()
        os.close(read)
        calls = 0
        try:
            if profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.runcall(child_main, theirs, "bench", os.getppid())
                calls = pstats.Stats(profiler).total_calls  # type: ignore[attr-defined]
            else:
                child_main(theirs, "bench", os.getppid())
        finally:
            os.write(write, str(calls).encode())
            os._exit(0)
    theirs.close()
    os.close(write)
    pending = b""
    for _ in range(batches):
        ours.sendall(line)
        replies = 0
        while replies < BATCH:
            pending += ours.recv(1 << 16)
            replies += pending.count(b"\n")
            pending = pending[pending.rfind(b"\n") + 1:]
    ours.close()  # EOF: the child returns from child_main
    _, _, usage = os.wait4(pid, 0)
    calls = int(os.read(read, 64) or b"0")
    os.close(read)
    return float(calls) if profile else usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=300, help=f"batches of {BATCH} jobs per round")
    parser.add_argument("--at", help="measure django_jobs/ as committed at this revision")
    args = parser.parse_args(argv)
    from . import code

    exported = code.export(args.at)[0] if args.at else None
    if exported:
        sys.path.insert(0, str(exported))
    try:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
        os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        import django

        django.setup()
        jobs = args.batches * BATCH
        cpu: list[Any] = [run_child(args.batches) / jobs * 1e6 for _ in range(args.rounds)]
        calls = run_child(args.batches, profile=True) / jobs
    finally:
        if exported:
            shutil.rmtree(exported, ignore_errors=True)
    print(f"django_jobs at {args.at or 'the working tree'}: a child's CPU per no-op job "
          f"{min(cpu):.1f} µs (least of {args.rounds}; all: {', '.join(f'{c:.1f}' for c in cpu)}); "
          f"{calls:.1f} Python calls per job")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
