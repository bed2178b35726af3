"""The cron service: sync the schedules declared in code once, then fire what is due."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from ..exceptions import JobsError
from ..log import log_event
from ..models import Schedule
from ..registry import registry
from ..scheduler import fire_due, seconds_until_due, sync_declared

if TYPE_CHECKING:
    from . import ServiceContext


class Scheduler:
    """The worker service: sync code schedules once, then fire what is due on every run."""

    name = "scheduler"

    def __init__(self, context: ServiceContext):
        self.using = context.using
        self.worker_id = context.worker_id
        self.synced = False

    def run(self, now: datetime) -> float:
        if not self.synced:
            try:
                sync_declared(self.using, now)
            except JobsError as exc:
                # System checks refuse bad declarations at startup; this is code loaded later.
                log_event("schedules_not_synced", logging.ERROR, error=str(exc), worker=self.worker_id)
            self.synced = True
            self._report_unregistered()
        fire_due(self.using, now, self.worker_id)
        # Zero when a pass left schedules due (more than PASS_LIMIT were): the worker runs it again.
        return seconds_until_due(self.using, now)

    def _report_unregistered(self) -> None:
        """Log, once per start, the enabled schedules no worker running this code can fire."""
        rows = (
            Schedule.objects.using(self.using)
            .filter(enabled=True)
            .exclude(job_name__in=registry.names())
            .values_list("name", "job_name")
        )
        for name, job_name in rows:
            log_event(
                "schedule_unregistered", logging.WARNING, schedule=name, name=job_name,
                note="no job of this name is registered: this worker never fires it", worker=self.worker_id,
            )
