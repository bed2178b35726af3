"""Why isn't this job running? What holds a waiting job back, in words an operator can act on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.timesince import timeuntil

from .conf import jobs_settings
from .db import gates
from .models import READY_STATUSES, RETRY_FROM, Dependency, Job, JobStatus, Pause, Worker


@dataclass(frozen=True)
class Reason:
    """One thing keeping a job from running, as a stable code and a sentence."""

    #: not_waiting, upstream, scheduled, backoff, paused_queue, paused_name, held, no_worker,
    #: unknown_name, busy, imminent
    code: str
    message: str


@dataclass(frozen=True)
class Upstream:
    """An upstream job a waiting job still waits on, as diagnose() shows it."""

    id: int
    status: str
    run_at: datetime


#: How many of the upstream jobs not succeeded yet a diagnosis names (the rest are counted).
UPSTREAM_NAMED = 10


def waiting_on(total: int, pending: list[Upstream], now: datetime) -> Reason:
    """Why a waiting job waits: "waiting on 2 of 3 upstream jobs: #12 (running), #13 (retrying,
    next attempt in 40 s)". ``pending`` holds the upstream jobs not succeeded, lowest id first."""
    named = []
    for upstream in pending[:UPSTREAM_NAMED]:
        left = round((upstream.run_at - now).total_seconds())
        if upstream.status == JobStatus.RETRYING and left > 0:
            named.append(f"#{upstream.id} (retrying, next attempt in {left} s)")
        elif upstream.status == JobStatus.QUEUED and left > 0:
            named.append(f"#{upstream.id} (queued, due in {left} s)")
        else:
            named.append(f"#{upstream.id} ({upstream.status})")
    more = len(pending) - UPSTREAM_NAMED
    listed = ", ".join(named) + (f" and {more} more" if more > 0 else "")
    jobs = "job" if total == 1 else "jobs"
    return Reason("upstream", f"Waiting on {len(pending)} of {total} upstream {jobs}: {listed}.")


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
    upstream: Reason | None = None,
) -> list[Reason]:
    """Every reason ``job`` isn't running at ``now``, or one saying it should start any moment.

    ``workers`` with a heartbeat older than ``rescue_after`` seconds count as gone, as rescue
    counts them. ``upstream`` says what a waiting job waits on (waiting_on()).
    """
    if job.status == JobStatus.WAITING:
        return [upstream or Reason("upstream", "Waiting on its upstream jobs.")]
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
    now = now or timezone.now()
    upstream = None
    if job.status == JobStatus.WAITING:
        edges = Dependency.objects.using(using).filter(downstream_id=job.pk)
        pending = (
            Job.objects.using(using).filter(pk__in=edges.values("upstream_id"))
            .exclude(status=JobStatus.SUCCEEDED).order_by("pk").values_list("pk", "status", "run_at")
        )
        upstream = waiting_on(edges.count(), [Upstream(*row) for row in pending], now)
    return why_not_running(
        job,
        now=now,
        pauses=Pause.objects.using(using).all(),
        workers=Worker.objects.using(using).all(),
        rescue_after=float(jobs_settings.RESCUE_AFTER),
        held=held,
        upstream=upstream,
    )
