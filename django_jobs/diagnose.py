"""Why isn't this job running? What holds a waiting job back, in words an operator can act on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.timesince import timeuntil

from .conf import jobs_settings
from .db import gates
from .models import READY_STATUSES, RETRY_FROM, Job, JobStatus, Pause, Worker


@dataclass(frozen=True)
class Reason:
    """One thing keeping a job from running, as a stable code and a sentence."""

    #: not_waiting, scheduled, backoff, paused_queue, paused_name, held, no_worker, unknown_name,
    #: busy, imminent
    code: str
    message: str


def _when(moment: datetime, now: datetime) -> str:
    local = timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{local} (in {timeuntil(moment, now)})"


def why_not_running(
    job: Job,
    *,
    now: datetime,
    pauses: Iterable[Pause],
    workers: Iterable[Worker],
    rescue_after: float,
    held: str | None = None,
) -> list[Reason]:
    """Every reason ``job`` isn't running at ``now``, or one saying it should start any moment.

    ``workers`` with a heartbeat older than ``rescue_after`` seconds count as gone, as rescue
    counts them.
    """
    if job.status not in READY_STATUSES:
        return [Reason("not_waiting", _not_waiting(job))]
    reasons: list[Reason] = []
    if job.run_at > now:
        if job.status == JobStatus.RETRYING:
            error = f": {job.last_error}" if job.last_error else ""
            reasons.append(
                Reason(
                    "backoff",
                    f"Attempt {job.attempts} of {job.max_attempts} failed{error}. The next attempt is "
                    f"due at {_when(job.run_at, now)}.",
                )
            )
        else:
            when = _when(job.run_at, now)
            reasons.append(Reason("scheduled", f"It is scheduled to run at {when}."))
    for pause in pauses:
        if pause.kind == Pause.Kind.QUEUE and pause.value == job.queue:
            message = f"Its queue '{job.queue}' is paused{_since(pause)}."
            reasons.append(Reason("paused_queue", message))
        elif pause.kind == Pause.Kind.NAME and pause.value == job.name:
            message = f"Jobs named '{job.name}' are paused{_since(pause)}."
            reasons.append(Reason("paused_name", message))
    if held:
        # A limit, a rate or a sequence (db/gates.py): it stays queued and spends no attempt.
        reasons.append(Reason("held", held[0].upper() + held[1:] + "."))
    fresh_after = now - timedelta(seconds=rescue_after)
    live = [w for w in workers if w.last_heartbeat >= fresh_after]
    serving = [w for w in live if not w.queues or job.queue in w.queues]
    if not serving:
        others = sorted({q for w in live for q in w.queues})
        elsewhere = f" ({len(live)} live worker(s) serve only {', '.join(others)})" if live else ""
        reasons.append(
            Reason(
                "no_worker",
                f"No live worker serves the queue '{job.queue}'{elsewhere}. Start one with "
                f"`manage.py runjobs --queue {job.queue}`, or without --queue to serve every queue.",
            )
        )
    elif not any(w.knows(job.name) for w in serving):
        grace = float(jobs_settings.UNKNOWN_JOB_GRACE)
        aside = (f" A worker that doesn't know it set it aside at "
                 f"{timezone.localtime(job.parked_at).strftime('%Y-%m-%d %H:%M:%S %Z')}." if job.parked_at else "")
        reasons.append(
            Reason(
                "unknown_name",
                f"No live worker knows the job name '{job.name}': none of the {len(serving)} serving "
                f"its queue registers it in its code.{aside} Deploy workers with the code that defines "
                f"it; once none has known it for UNKNOWN_JOB_GRACE ({timedelta(seconds=grace)}), it "
                f"ends dead with JobNotRegistered.",
            )
        )
    elif not reasons and all(len(w.running) >= w.concurrency for w in serving):
        slots = sum(w.concurrency for w in serving)
        reasons.append(
            Reason(
                "busy",
                f"Every worker serving the queue '{job.queue}' is busy ({slots} of {slots} slots); "
                f"it runs when one is free, after the waiting jobs ahead of it.",
            )
        )
    return reasons or [Reason("imminent", "Nothing holds it back: it should start any moment.")]


def _since(pause: Pause) -> str:
    when = timezone.localtime(pause.created_at).strftime("%Y-%m-%d %H:%M %Z")
    return f" since {when}" + (f" ({pause.reason})" if pause.reason else "")


def _not_waiting(job: Job) -> str:
    if job.status == JobStatus.RUNNING:
        return f"It is running (attempt {job.attempts}, on worker {job.worker_id or 'unknown'})."
    again = "; retry it to run it again" if job.status in RETRY_FROM else ""
    return f"It has finished ({job.get_status_display().lower()}){again}."


def diagnose(job: Job, now: datetime | None = None) -> list[Reason]:
    """Why ``job`` isn't running, from the pauses, flow-control limits and workers in its database."""
    using = job._state.db or Job.objects.db
    held = gates.explain(using, job) if job.status in READY_STATUSES else None
    return why_not_running(
        job,
        now=now or timezone.now(),
        pauses=Pause.objects.using(using).all(),
        workers=Worker.objects.using(using).all(),
        rescue_after=float(jobs_settings.RESCUE_AFTER),
        held=held,
    )
