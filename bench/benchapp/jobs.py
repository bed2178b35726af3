"""Jobs the benchmark enqueues. Their bodies do as little as possible (we measure the queue), but for
section K's, which write a row or sleep as real jobs do."""

from __future__ import annotations

import inspect
import time

from django.db.models import F

from django_jobs import job

from .models import Counter


@job(name="bench.noop")
def noop() -> None:
    """Do nothing."""


@job(name="bench.probe")
def probe() -> float:
    """Return the wall-clock time the body started (the harness subtracts the enqueue's commit)."""
    return time.time()


@job(name="bench.orm_write")
def orm_write(n: int) -> None:
    """Add one to Counter row ``n`` with one ORM UPDATE (section K: a job that writes a row)."""
    Counter.objects.filter(pk=n).update(counter=F("counter") + 1)


@job(name="bench.sleep")
def sleep(seconds: float) -> float:
    """Sleep ``seconds`` (a job waiting on I/O, section K's queues); return when the body started,
    as bench.probe does."""
    started = time.time()
    time.sleep(seconds)
    return started


# Section G's jobs, registered only where @job has flow control: a run pinned to an older commit
# (--at, G's baseline) imports this module too. (Asked of @job itself: a module missing from that
# commit, django_jobs.flow, would still be found in the working tree by the editable install.)
FLOW_CONTROL = "concurrency" in inspect.signature(job).parameters
if FLOW_CONTROL:
    from . import limited  # noqa: F401  (registers bench.keyed, bench.unkeyed, bench.rated)
