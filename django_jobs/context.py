"""``current_job()``: what a running job can know about itself and report back."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from .text import storable

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from .models import Job


@dataclass(frozen=True)
class JobContext:
    """The attempt in progress, as seen from inside the job function."""

    id: int
    name: str
    attempt: int
    max_attempts: int
    queue: str
    worker_id: str
    using: str

    @property
    def stop_requested(self) -> bool:
        """True once someone asked this job to stop, or its worker is shutting down: return soon.

        After an operator's stop the job ends ``stopped``. During the worker's shutdown, a job
        that returns after this said True is handed back (queued again, no attempt spent) to go
        on from its checkpoint on the next worker; see docs/how-to/deploying.md.
        """
        if worker_shutdown.is_set():
            worker_shutdown.seen = True
            return True
        return self._stop_request().exists()

    async def astop_requested(self) -> bool:
        """``stop_requested`` for an ``async def`` job: ``if await current_job().astop_requested():``."""
        if worker_shutdown.is_set():
            worker_shutdown.seen = True
            return True
        return await self._stop_request().aexists()

    def set_progress(self, percent: float | None = None, message: str = "") -> None:
        """Store how far the job has got, shown in the admin: ``set_progress(40, "400 of 1000")``."""
        rows, value = self._progress(percent, message)
        rows.update(progress=value)

    async def aset_progress(self, percent: float | None = None, message: str = "") -> None:
        """``set_progress()`` for an ``async def`` job: ``await current_job().aset_progress(40)``."""
        rows, value = self._progress(percent, message)
        await rows.aupdate(progress=value)

    def _stop_request(self) -> QuerySet[Job[Any]]:
        # Here, not at the top: `from django_jobs import current_job` must work in modules
        # imported before Django's apps are ready, and the models can't be imported then.
        from .models import Job

        return Job.objects.using(self.using).filter(pk=self.id, stop_requested_at__isnull=False)

    def upstream_results(self) -> dict[int, Any]:
        """The results of the jobs this one waited on (``using(after=[...])``), by job id.

        Every upstream job had succeeded when this one was queued, and pruning keeps them until
        this job has finished, so each one is here; ``{}`` for a job enqueued without ``after``.
        """
        return dict(self._upstream().values_list("pk", "result"))

    async def aupstream_results(self) -> dict[int, Any]:
        """``upstream_results()`` for an ``async def`` job."""
        return {pk: result async for pk, result in self._upstream().values_list("pk", "result")}

    def _upstream(self) -> QuerySet[Job[Any]]:
        from .models import Dependency, Job  # (see _stop_request)

        upstream = Dependency.objects.using(self.using).filter(downstream_id=self.id).values("upstream_id")
        return Job.objects.using(self.using).filter(pk__in=upstream)

    def _progress(self, percent: float | None, message: str) -> tuple[QuerySet[Job[Any]], dict[str, Any]]:
        from .models import Job, JobStatus  # (see _stop_request)

        value: dict[str, Any] = {"percent": percent, "message": storable(message), "at": timezone.now().isoformat()}
        rows = Job.objects.using(self.using).filter(pk=self.id, status=JobStatus.RUNNING, attempts=self.attempt)
        return rows, value


class WorkerShutdown:
    """Whether the worker running this process's job is shutting down, and whether the job was
    told so (a worker's child sets ``is_set``; ``run_job()`` reads and resets ``seen``)."""

    def __init__(self) -> None:
        self.is_set: Callable[[], bool] = lambda: False
        self.seen = False


worker_shutdown = WorkerShutdown()

_current: ContextVar[JobContext | None] = ContextVar("django_jobs_current_job", default=None)


def current_job() -> JobContext | None:
    """The job running in this process, or None outside a job."""
    return _current.get()
