"""The job only the new code defines."""

from __future__ import annotations

from django_jobs import current_job, job
from tests.testapp.models import SideEffect


@job(max_attempts=1)
def added_in_v2(label: str) -> None:
    """Record that it ran (tests count the rows)."""
    ctx = current_job()
    SideEffect.objects.create(job_id=ctx.id if ctx else 0, label=label, attempt=ctx.attempt if ctx else 0)
