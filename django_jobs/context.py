"""``current_job()``: what a running job can know about itself and report back."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from .text import storable


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
        """True once someone asked this job to stop: return soon and the job ends ``stopped``."""
        # Here, not at the top: `from django_jobs import current_job` must work in modules
        # imported before Django's apps are ready, and the models can't be imported then.
        from .models import Job

        return (
            Job.objects.using(self.using)
            .filter(pk=self.id, stop_requested_at__isnull=False)
            .exists()
        )

    def upstream_results(self) -> dict[int, Any]:
        """The results of the jobs this one waited on (``using(after=[...])``), by job id.

        Every upstream job had succeeded when this one was queued, and pruning keeps them until
        this job has finished, so each one is here; ``{}`` for a job enqueued without ``after``.
        """
        from .models import Dependency, Job  # (see stop_requested)

        upstream = Dependency.objects.using(self.using).filter(downstream_id=self.id).values("upstream_id")
        return dict(Job.objects.using(self.using).filter(pk__in=upstream).values_list("pk", "result"))

    def set_progress(self, percent: float | None = None, message: str = "") -> None:
        """Store how far the job has got, shown in the admin: ``set_progress(40, "400 of 1000")``."""
        from .models import Job, JobStatus  # (see stop_requested)

        value: dict[str, Any] = {"percent": percent, "message": storable(message), "at": timezone.now().isoformat()}
        Job.objects.using(self.using).filter(
            pk=self.id, status=JobStatus.RUNNING, attempts=self.attempt
        ).update(progress=value)


_current: ContextVar[JobContext | None] = ContextVar("django_jobs_current_job", default=None)


def current_job() -> JobContext | None:
    """The job running in this process, or None outside a job."""
    return _current.get()
