"""Maintenance services every worker runs between claims: no leader, each safe to run anywhere.

A service is an object with a ``name`` and ``run(now) -> float``: do whatever is due at ``now``
and return how many seconds until it wants to run again. Services must be safe when every worker
runs them at once (the database arbitrates); the worker catches and logs their errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .prune import Pruner
from .rescue import Rescuer
from .scheduler import Scheduler
from .schedules import ScheduleWatch
from .tally import Tally
from .unknown import UnknownSweeper


@dataclass(frozen=True)
class ServiceContext:
    """What a service may know of the worker running it."""

    #: The database alias the worker claims from.
    using: str
    #: The worker's id, for log lines and for what it claims or rescues.
    worker_id: str
    #: The worker's clock (tests pass their own).
    clock: Callable[[], datetime]


class Service(Protocol):
    name: str

    def run(self, now: datetime) -> float: ...


def default_services(context: ServiceContext, *, scheduler: bool = True) -> list[Service]:
    """The services a worker runs; ``scheduler=False`` is ``runjobs --no-scheduler``."""
    services: list[Service] = [
        Rescuer(context), Pruner(context), Tally(context), UnknownSweeper(context), ScheduleWatch(context)
    ]
    if scheduler:
        services.append(Scheduler(context))
    return services
