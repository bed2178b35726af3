"""Jobs the benchmark enqueues. Their bodies do as little as possible: we measure the queue."""

from __future__ import annotations

import time

from django_jobs import job


@job(name="bench.noop")
def noop() -> None:
    """Do nothing."""


@job(name="bench.probe")
def probe() -> float:
    """Return the wall-clock time the body started (the harness subtracts the enqueue's commit)."""
    return time.time()
