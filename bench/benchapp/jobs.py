"""Jobs the benchmark enqueues. Their bodies do as little as possible: we measure the queue."""

from __future__ import annotations

import inspect
import time

from django_jobs import job


@job(name="bench.noop")
def noop() -> None:
    """Do nothing."""


@job(name="bench.probe")
def probe() -> float:
    """Return the wall-clock time the body started (the harness subtracts the enqueue's commit)."""
    return time.time()


# Section G's jobs, registered only where @job has flow control: a run pinned to an older commit
# (--at, G's baseline) imports this module too. (Asked of @job itself: a module missing from that
# commit, django_jobs.flow, would still be found in the working tree by the editable install.)
FLOW_CONTROL = "concurrency" in inspect.signature(job).parameters
if FLOW_CONTROL:
    from . import limited  # noqa: F401  (registers bench.keyed, bench.unkeyed, bench.rated)
