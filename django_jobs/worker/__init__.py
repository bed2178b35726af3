"""The worker behind ``manage.py runjobs``, as a package of small parts.

- ``loop``: ``WorkerLoop``, which only sequences the parts below.
- ``ledger``: the claimed jobs and pending outcomes, written in batches with the next claim.
- ``pool``: the children (dispatch, replies, deadlines, replacing a child that died).
- ``forkserver``: the single-threaded process every child is forked from.
- ``shutdown``: the flag a graceful shutdown sets, shared with the children.
- ``cpus``: how many CPUs the worker may use (the default concurrency).
- ``claim_ahead``: how far to claim ahead of free children, as plain arithmetic.
- ``presence``: the worker's row, its heartbeat thread and stop requests.
- ``listener``: the LISTEN thread that wakes the loop.
- ``maintenance``: the maintenance services, run between claims.
- ``reconnect``: the main connection's outages and backoff.
- ``protocol``: the JSON lines parent and child exchange.
- ``child``: a child process's main loop.
- ``invocation``: running one job in this process.
"""

from __future__ import annotations

from .cpus import available_cpus
from .loop import WorkerLoop
from .pool import MAX_CONCURRENCY
from .presence import default_worker_id

__all__ = ["MAX_CONCURRENCY", "WorkerLoop", "available_cpus", "default_worker_id"]
