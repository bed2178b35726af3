"""What starting a worker's child costs: ``.venv/bin/python -m bench.child_start [--runs N]``.

A child is started at the worker's start and again after every timeout, crash or stop past its
grace, so its cost is what a replacement costs. Two ways, measured in one process with Django
set up and the bench app loaded (a worker's memory, roughly), while two threads run as the
heartbeat and listener do:

- ``fork from the worker``: what the worker did before issue 16 (``multiprocessing``'s fork
  context, from the threaded main process) and still does where there is no fork server.
- ``fork server``: the worker asks its single-threaded fork server (worker/forkserver.py).

Each run starts a child, sends it one job (a name nothing registers: the child answers at once
without touching the database) and waits for the answer, then kills the child as a timeout
would. ``start`` is the time the worker is blocked in ``Slot.start()``; ``answered`` runs until
the new child's first reply, which is when it can run a job. No database is needed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import warnings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django_jobs.worker.child import child_main  # noqa: E402
from django_jobs.worker.forkserver import ForkServer  # noqa: E402
from django_jobs.worker.pool import Slot  # noqa: E402
from django_jobs.worker.protocol import batch_line  # noqa: E402

JOB = {"id": 1, "name": "bench.not_registered", "queue": "default", "attempt": 1, "max_attempts": 1,
       "args_json": "[]", "kwargs_json": "{}"}


def _served(sock: object, server_pid: int) -> None:
    child_main(sock, "bench", server_pid)  # type: ignore[arg-type]


def measure(slot: Slot, runs: int) -> tuple[list[float], list[float]]:
    starts, answers = [], []
    line = batch_line([JOB], "default")
    for _ in range(runs):
        began = time.perf_counter()
        slot.start()
        started = time.perf_counter()
        assert slot.conn is not None
        slot.conn.sendall(line)
        received = b""
        while not received.endswith(b"\n"):
            received += slot.conn.recv(1 << 16)
        answered = time.perf_counter()
        slot.kill()  # as after a timeout: the next run is the replacement
        starts.append((started - began) * 1000)
        answers.append((answered - began) * 1000)
    return starts, answers


def row(label: str, values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    return f"| {label} | {statistics.median(values):.2f} | {statistics.fmean(values):.2f} | {p95:.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    runs = parser.parse_args().runs

    server = ForkServer(_served)
    server.start()  # before any thread, as the worker does

    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait, daemon=True) for _ in range(2)]  # heartbeat, listener
    for thread in threads:
        thread.start()
    results = {}
    with warnings.catch_warnings():
        # Python 3.12+ warns at each fork from the threaded process: the point of the server.
        warnings.simplefilter("ignore", DeprecationWarning)
        results["fork from the worker"] = measure(Slot(0, "bench"), runs)
    results["fork server"] = measure(Slot(0, "bench", server=server), runs)
    stop.set()
    server.stop()

    print(f"Child start, {runs} runs each (ms): median, mean, 95th percentile")
    print("| how | median | mean | p95 |")
    print("|---|---|---|---|")
    for label, (starts, answers) in results.items():
        print(row(f"{label}: start", starts))
        print(row(f"{label}: answered", answers))


if __name__ == "__main__":
    main()
