"""Maintenance services every worker runs between claims: no leader, each safe to run anywhere.

A service is an object with a ``name`` and ``run(now) -> float``: do whatever is due at ``now``
and return how many seconds until it wants to run again. Services must be safe when every worker
runs them at once (the database arbitrates); the worker catches and logs their errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .worker import Worker


class Service(Protocol):
    name: str

    def run(self, now: datetime) -> float: ...


def default_services(worker: Worker) -> list[Service]:
    """The services a worker runs, given its options (e.g. ``--no-scheduler``)."""
    from .counters import Tally
    from .prune import Pruner
    from .rescue import Rescuer

    services: list[Service] = [Rescuer(worker), Pruner(worker), Tally(worker)]
    if worker.scheduler:
        from .scheduler import Scheduler

        services.append(Scheduler(worker))
    return services
