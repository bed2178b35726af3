"""The maintenance services (rescue, pruning, tallies, cron) as the worker's loop runs them: each
when it is due, between claims, never while the database is away."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from ..services import Service
from .reconnect import DB_DOWN, DatabaseLink

logger = logging.getLogger("django_jobs")


class Maintenance:
    """Runs each service when it is due; a service's ``run()`` says when it wants to run again."""

    def __init__(
        self, services: Sequence[Service], *, link: DatabaseLink, clock: Callable[[], datetime], worker_id: str
    ) -> None:
        self.services = services
        self.link = link
        self.clock = clock
        self.worker_id = worker_id
        #: Monotonic time each service is next due, by id(service).
        self.due = {id(s): 0.0 for s in services}

    def run_due(self) -> None:
        """Run the services that are due (the caller checks the worker isn't stopping)."""
        if self.link.is_down():
            return
        for service in self.services:
            if time.monotonic() < self.due[id(service)]:
                continue
            try:
                with self.link.call():
                    delay = service.run(self.clock())
                self.link.ok()
            except DB_DOWN as exc:
                self.link.lost(exc)
                return
            except Exception:  # noqa: BLE001 - a broken service must not stop the worker
                logger.exception(
                    "django_jobs event=service_failed service=%s worker=%s", service.name, self.worker_id
                )
                delay = 5.0
            self.due[id(service)] = time.monotonic() + max(0.0, delay)
