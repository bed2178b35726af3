"""A Prometheus endpoint: queue depth and lag, finished-job counters, workers, pauses and limits.

Wire it with ``path("jobs/", include("django_jobs.urls"))``; it answers at ``jobs/metrics``.
Readers authenticate with ``Authorization: Bearer <DJANGO_JOBS["METRICS_TOKEN"]>`` or as a
logged-in staff user who may see the admin's overview page. Every number comes from the indexed
statements of db/stats.py and the small counter and worker tables, so a scrape stays cheap
however large the job table grows. See docs/how-to/monitoring.md.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from . import stats
from .conf import jobs_settings
from .models import ACTIVE_STATUSES, FINISHED_STATUSES, FinishedCounter, JobStatus, Schedule
from .registry import registry
from .services import tally as counters

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The permission a logged-in staff user needs (the admin overview page's).
VIEW_PERMISSION = "django_jobs.view_queueoverview"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Exposition:
    """Prometheus text format, one metric family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        self.lines.extend(f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(using: str, *, now: datetime) -> str:
    """Every metric, in Prometheus text format."""
    out = Exposition()
    workers = stats.worker_stats(using, now=now)
    live = [w for w in workers if not w.silent]
    queues = stats.queue_stats(
        using,
        now=now,
        recent=False,
        extra_queues={q for w in workers for q in (w.worker.queues or [])},
    )
    out.family(
        "django_jobs_jobs",
        "gauge",
        "Jobs waiting or running now, by queue and status.",
        [
            ({"queue": q.queue, "status": s.value}, getattr(q, s.value))
            for q in queues
            for s in (JobStatus.WAITING, *ACTIVE_STATUSES)
        ],
    )
    out.family(
        "django_jobs_ready_jobs",
        "gauge",
        "Queued or retrying jobs whose run_at has passed: a worker could claim them now.",
        [({"queue": q.queue}, q.ready) for q in queues],
    )
    out.family(
        "django_jobs_oldest_ready_age_seconds",
        "gauge",
        "How long the oldest ready job of the queue has waited to be claimed; 0 when none waits.",
        [({"queue": q.queue}, round(q.lag(now).total_seconds(), 3)) for q in queues],
    )
    out.family(
        "django_jobs_finished_total",
        "counter",
        "Jobs finished since counting began, by queue, job name and status; tallied by the "
        "workers about 30-45 s behind, never lowered by pruning or retries.",
        _finished_samples(using),
    )
    until = counters.counted_until(using)
    out.family(
        "django_jobs_finished_counted_until_timestamp_seconds",
        "gauge",
        "Jobs that finished up to this Unix time are in django_jobs_finished_total.",
        [({}, round(until.timestamp(), 3))] if until else [],
    )
    out.family(
        "django_jobs_workers", "gauge", "Workers with a recent heartbeat.", [({}, len(live))]
    )
    out.family(
        "django_jobs_worker_slots",
        "gauge",
        "Child processes of the live workers: jobs they can run at once.",
        [({}, sum(w.worker.concurrency for w in live))],
    )
    out.family(
        "django_jobs_worker_busy_slots",
        "gauge",
        "Jobs the live workers are running.",
        [({}, sum(len(w.running) for w in live))],
    )
    paused_queues, paused_names = stats.paused(using)
    out.family(
        "django_jobs_paused_since_timestamp_seconds",
        "gauge",
        "When a queue or job name was paused (Unix time); absent while it isn't.",
        [
            ({"kind": p.kind, "value": p.value}, round(p.created_at.timestamp(), 3))
            for p in [*paused_queues, *paused_names]
        ],
    )
    schedules = stats.watched_schedules(using)  # read once for both families below
    problems = stats.schedule_problems(using, now=now, schedules=schedules)
    _schedule_families(out, schedules, problems)
    out.family(
        "django_jobs_schedule_problem",
        "gauge",
        "Enabled schedules that don't fire as they should: problem=\"failing\" when their last due "
        "tick enqueued nothing (the admin shows why), \"unregistered\" when no job of their job "
        "name is registered, \"missed\" when no job of theirs succeeded within their grace of a "
        "tick; absent while none.",
        [
            ({"schedule": p.schedule.name, "job": p.schedule.job_name, "problem": p.problem}, 1)
            for p in problems
        ],
    )
    unknown = stats.unknown_names(using, now=now)
    out.family(
        "django_jobs_unknown_name_jobs",
        "gauge",
        "Queued jobs set aside because the worker that claimed them doesn't register their name, "
        "by name and whether a live worker knows it (known=\"false\": they end dead after "
        "UNKNOWN_JOB_GRACE); absent while none.",
        [({"name": u.name, "known": "true" if u.known_by else "false"}, u.jobs) for u in unknown],
    )
    _limit_families(out, stats.limit_usage(using, now=now))
    return out.text()


def _schedule_families(out: Exposition, schedules: list[Schedule], problems: list[stats.ScheduleProblem]) -> None:
    """Each enabled schedule's last success and missed flag: the dead-man alert's two series."""
    missed = {p.schedule.pk for p in problems if p.problem == "missed"}

    def labels(s: Schedule) -> dict[str, str]:
        return {"schedule": s.name, "name": s.job_name}

    out.family(
        "django_jobs_schedule_last_success_timestamp_seconds",
        "gauge",
        "When a job of the schedule last succeeded (Unix time); absent until one has. Alert on "
        "time() minus this, or on django_jobs_schedule_missed.",
        [
            (labels(s), round(latest.timestamp(), 3))
            for s in schedules
            if (latest := getattr(s, "latest_success", None)) is not None
        ],
    )
    out.family(
        "django_jobs_schedule_missed",
        "gauge",
        "1 while the enabled schedule has missed a run: no job of it succeeded within its grace "
        "(DJANGO_JOBS[\"SCHEDULE_GRACE\"], or the schedule's own) of a tick; else 0.",
        [(labels(s), 1 if s.pk in missed else 0) for s in schedules],
    )


def _limit_families(out: Exposition, usages: list[stats.LimitUsage]) -> None:
    """The flow-control limits in effect and their usage, per limited queue and job name."""
    def target(u: stats.LimitUsage) -> dict[str, str]:
        return {"scope": u.scope, "target": u.target}

    concurrent = [u for u in usages if u.concurrency is not None]
    rated = [u for u in usages if u.rate is not None]
    out.family(
        "django_jobs_limit_concurrency",
        "gauge",
        "The concurrency limit in effect on a queue or job name (per key when the job has a "
        "concurrency_key); absent while it has none.",
        [(target(u), u.concurrency or 0) for u in concurrent],
    )
    out.family(
        "django_jobs_limit_running",
        "gauge",
        "Jobs running now in a limited queue, or of a limited job name (over all its keys).",
        [(target(u), u.running) for u in usages],
    )
    out.family(
        "django_jobs_limit_rate",
        "gauge",
        "Starts a rate limit allows per window (per key when the job has a rate_key).",
        [(target(u), u.rate.count) for u in rated if u.rate is not None],
    )
    out.family(
        "django_jobs_limit_rate_period_seconds",
        "gauge",
        "The window of a rate limit, in seconds.",
        [(target(u), u.rate.period) for u in rated if u.rate is not None],
    )
    out.family(
        "django_jobs_limit_rate_starts",
        "gauge",
        "Starts within a rate limit's current window (its last period); absent for a rate per key.",
        [(target(u), u.rate_starts) for u in rated if u.rate_starts is not None],
    )
    keyed = [(u, kind, keys) for u in usages for kind, keys in u.keys.items()]
    out.family(
        "django_jobs_limit_keys_waiting",
        "gauge",
        "Keys of a job name limited per key (limit=\"concurrency\" or \"rate\") that have jobs "
        "ready to start.",
        [({**target(u), "limit": kind}, keys.waiting) for u, kind, keys in keyed],
    )
    out.family(
        "django_jobs_limit_keys_at_limit",
        "gauge",
        "Of those keys, the ones at their limit: their ready jobs are held until a job of the "
        "key finishes (concurrency) or the window moves on (rate).",
        [({**target(u), "limit": kind}, keys.at_limit) for u, kind, keys in keyed],
    )


def _finished_samples(using: str) -> list[tuple[dict[str, str], float]]:
    # Every (queue, job) pair gets all three statuses, zero until the first such finish: a series
    # that first appears at 1 has no earlier sample, so increase() would miss that first death.
    counts: dict[tuple[str, str, str], int] = {}
    pairs = {(d.queue or str(jobs_settings.DEFAULT_QUEUE), d.name) for d in registry}
    for queue, name, status, count in FinishedCounter.objects.using(using).values_list(
        "queue", "name", "status", "count"
    ):
        counts[(queue, name, status)] = count
        pairs.add((queue, name))
    return [
        ({"queue": queue, "name": name, "status": s.value}, counts.get((queue, name, s.value), 0))
        for queue, name in sorted(pairs)
        for s in FINISHED_STATUSES
    ]


def _authorized(request: HttpRequest) -> bool:
    token = jobs_settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # Stripped: a token read from a file or a secret store often ends with a newline.
    token = str(token).strip() if token else ""
    if token and scheme.lower() == "bearer" and given.strip():
        # Constant time: how much of a guess matched must not show in the response time.
        return hmac.compare_digest(given.strip().encode(), token.encode())
    user: Any = getattr(request, "user", None)
    return bool(user and user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))


@require_http_methods(["GET", "HEAD"])
def metrics(request: HttpRequest) -> HttpResponse:
    """Serve the metrics to a bearer of METRICS_TOKEN or a staff user allowed the overview."""
    if not _authorized(request):
        response = HttpResponse(
            "Send Authorization: Bearer <DJANGO_JOBS['METRICS_TOKEN']>, or log in to the admin as "
            "a staff user allowed to view the jobs overview.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="django-jobs metrics"'
        return response
    response = HttpResponse(
        render(jobs_settings.DATABASE, now=timezone.now()), content_type=CONTENT_TYPE
    )
    response["Cache-Control"] = "no-store"
    return response
