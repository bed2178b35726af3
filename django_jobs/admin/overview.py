"""The admin's overview page: every queue, worker, pause and limit on one screen, with pause buttons.

Registered on the ``QueueOverview`` proxy so that it is listed on the admin index and guarded by
its view permission (``django_jobs.view_queueoverview``). Pausing takes
``django_jobs.add_pause`` and resuming ``django_jobs.delete_pause``: a pause is a ``Pause`` row,
so the model's own permissions say who may create and remove one. Likewise the link to the limits'
page shows to who may see it (``django_jobs.view_limit``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from .. import audit, stats, timeline
from ..conf import jobs_settings
from ..models import Job, Pause
from ..readable import format_age
from ..registry import registry
from .charts import chart_context

TEMPLATE = "admin/django_jobs/overview.html"
PAUSE_PERMISSION = "django_jobs.add_pause"
RESUME_PERMISSION = "django_jobs.delete_pause"
#: Who may open the limits' page (to see, set, change or lift a limit).
LIMITS_PERMISSION = "django_jobs.view_limit"
#: Seconds the page may reload itself after (``?refresh=10``), for a screen on the wall.
REFRESH_CHOICES = (5, 10, 30, 60)
QUEUE_MAX_LENGTH = Job._meta.get_field("queue").max_length or 100
REASON_MAX_LENGTH = Pause._meta.get_field("reason").max_length or 255
#: How the overview names each kind of stats.ScheduleProblem.
SCHEDULE_PROBLEMS = {
    "unregistered": "Job not registered", "failing": "Last tick failed", "missed": "Missed its run",
}


def _url(name: str, *args: Any, query: dict[str, Any] | None = None) -> str | None:
    """An admin URL, or None while that admin page isn't registered."""
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode(query)}" if query else url


def _link(text: Any, url: str | None) -> str:
    return format_html('<a href="{}">{}</a>', url, text) if url else format_html("{}", text)


def _jobs_link(count: int, **lookups: Any) -> str:
    """``count``, linked to the job list filtered by ``lookups`` (plain text while it is 0)."""
    text = f"{count:,}"
    if not count:
        return text
    return _link(text, _url("admin:django_jobs_job_changelist", query=lookups))


def _job_link(job_id: Any, name: str | None) -> str:
    text = f"#{job_id} {name}" if name else f"#{job_id}"
    return _link(text, _url("admin:django_jobs_job_change", job_id))


class QueueOverviewAdmin(admin.ModelAdmin):
    """Not a list of rows: one page of statistics, and the pause and resume buttons."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        # Only these: the inherited change and history views would show any job's arguments to
        # whoever may see the overview.
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.changelist_view), name="%s_%s_changelist" % info),
            path("pause/", wrap(self.pause_view), name="%s_%s_pause" % info),
            path("resume/", wrap(self.resume_view), name="%s_%s_resume" % info),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        using = jobs_settings.DATABASE
        now = timezone.now()
        workers = stats.worker_stats(using, now=now)
        worker_queues = {q for w in workers for q in (w.worker.queues or [])}
        queues = stats.queue_stats(using, now=now, extra_queues=worker_queues)
        paused_queues, paused_names = stats.paused(using)
        stored = stats.stored_finished(using)
        grace = float(jobs_settings.UNKNOWN_JOB_GRACE)
        refresh = request.GET.get("refresh", "")
        view = timeline.view_named(request.GET.get("range"))
        context = {
            **self.admin_site.each_context(request),
            **(extra_context or {}),
            "opts": self.opts,
            "title": "Jobs overview",
            "now": now,
            "queues": [self._queue_row(q, now) for q in queues],
            "workers": [self._worker_row(w, now) for w in workers],
            "paused_queues": paused_queues,
            "paused_names": paused_names,
            "stored": [
                (status, f"{count:,}", status in stored.estimated)
                for status, count in stored.counts.items()
            ],
            "stored_exact": stored.exact,
            "recent_minutes": int(stats.RECENT.total_seconds() // 60),
            "schedule_problems": [
                {
                    "schedule": _link(
                        p.schedule.name, _url("admin:django_jobs_schedule_change", p.schedule.pk)
                    ),
                    "job": p.schedule.job_name,
                    "problem": SCHEDULE_PROBLEMS[p.problem],
                    "message": p.message,
                }
                for p in stats.schedule_problems(using, now=now)
            ],
            "unknown_names": [
                {
                    "name": u.name,
                    "jobs": _jobs_link(u.jobs, name=u.name, status="queued"),
                    "since": u.parked_since,
                    "known_by": ", ".join(u.known_by),
                    "ends_dead_at": u.ends_dead_at(grace),
                }
                for u in stats.unknown_names(using, now=now)
            ],
            "registered_names": registry.names(),
            "queue_names": [q.queue for q in queues],
            "can_pause": request.user.has_perm(PAUSE_PERMISSION),
            "can_resume": request.user.has_perm(RESUME_PERMISSION),
            "refresh": next((r for r in REFRESH_CHOICES if refresh == str(r)), None),
            "refresh_choices": REFRESH_CHOICES,
            **chart_context(request, view, [
                (q.queue, q.charts) for q in timeline.queue_charts(using, view, now=now)
            ]),
            "dead_letters_url": _url("admin:django_jobs_deadletter_changelist"),
            "limits": [_limit_row(u) for u in stats.limit_usage(using, now=now)],
            "limits_url": (
                _url("admin:django_jobs_limit_changelist")
                if request.user.has_perm(LIMITS_PERMISSION) else None
            ),
            "pause_url": reverse(
                "admin:django_jobs_queueoverview_pause", current_app=self.admin_site.name
            ),
            "resume_url": reverse(
                "admin:django_jobs_queueoverview_resume", current_app=self.admin_site.name
            ),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, TEMPLATE, context)

    def _queue_row(self, q: stats.QueueStats, now: Any) -> dict[str, Any]:
        since = (now - stats.RECENT).isoformat()
        return {
            "name": q.queue,
            "waiting": _jobs_link(q.waiting, queue=q.queue, status="waiting"),
            "queued": _jobs_link(q.queued, queue=q.queue, status="queued"),
            "retrying": _jobs_link(q.retrying, queue=q.queue, status="retrying"),
            "running": _jobs_link(q.running, queue=q.queue, status="running"),
            "ready": f"{q.ready:,}",
            "lag": format_age(q.lag(now)) if q.oldest_ready_at else "—",
            "lag_seconds": int(q.lag(now).total_seconds()),
            "recent": {
                status: _jobs_link(
                    q.recent.get(status, 0), queue=q.queue, status=status, finished_at__gte=since
                )
                for status in ("succeeded", "stopped", "dead")
            },
            "paused": q.paused,
        }

    def _worker_row(self, w: stats.WorkerStats, now: Any) -> dict[str, Any]:
        running = []
        for job in w.running:
            started = job.get("started_at")
            running.append(
                {
                    "link": _job_link(job["id"], job.get("name")),
                    "for": format_age(now - started) if started else None,
                }
            )
        return {
            "id": w.worker.worker_id,
            "host": w.worker.hostname,
            "pid": w.worker.pid,
            "queues": ", ".join(w.worker.queues or []) or "every queue",
            "concurrency": w.worker.concurrency,
            "busy": len(w.running),
            "started": format_age(now - w.worker.started_at),
            "heartbeat": format_age(w.heartbeat_age),
            "silent": w.silent,
            "running": running,
        }

    # -- pause and resume: POST only, CSRF-checked by admin_view, each with its permission -----

    def _redirect(self) -> HttpResponseRedirect:
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(
            reverse("admin:%s_%s_changelist" % info, current_app=self.admin_site.name)
        )

    def _posted(self, request: HttpRequest, permission: str) -> tuple[str, str] | HttpResponse:
        """The (kind, value) a pause or resume form posted, or the response that refuses it."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(permission):
            raise PermissionDenied
        kind = request.POST.get("kind", "")
        value = request.POST.get("value", "").strip()
        problem = None
        if kind not in Pause.Kind.values:
            problem = f"kind must be one of {', '.join(Pause.Kind.values)}, not {kind!r}."
        elif not value:
            problem = (
                f"name the {'queue' if kind == Pause.Kind.QUEUE else 'job'} to pause or resume."
            )
        elif kind == Pause.Kind.QUEUE and len(value) > QUEUE_MAX_LENGTH:
            problem = f"a queue name has at most {QUEUE_MAX_LENGTH} characters."
        if problem:
            self.message_user(request, f"Nothing changed: {problem}", messages.ERROR)
            return self._redirect()
        return kind, value

    def pause_view(self, request: HttpRequest) -> HttpResponse:
        """Pause a queue or a job name on every worker; needs ``django_jobs.add_pause``."""
        posted = self._posted(request, PAUSE_PERMISSION)
        if isinstance(posted, HttpResponse):
            return posted
        kind, value = posted
        if kind == Pause.Kind.NAME and value not in registry:
            self.message_user(
                request,
                f"Nothing changed: no job is registered as {value!r}. Pick one of the "
                "registered jobs from the list.",
                messages.ERROR,
            )
            return self._redirect()
        reason = request.POST.get("reason", "").strip()[:REASON_MAX_LENGTH]
        pauses = Pause.objects.db_manager(jobs_settings.DATABASE)
        existed = pauses.filter(kind=kind, value=value).exists()
        pause = pauses.pause(kind, value, reason)
        label = _label(kind, value)
        if not existed:
            message = "Paused from the overview." + (f" Reason: {reason}" if reason else "")
            audit.log_objects(request.user, [pause], audit.ADDITION, message)
        if existed:
            self.message_user(
                request, f"Nothing to do: {label} was already paused.", messages.WARNING
            )
        else:
            self.message_user(
                request,
                f"Paused {label}: workers finish what they are running and claim no more "
                "of its jobs until it is resumed.",
                messages.SUCCESS,
            )
        return self._redirect()

    def resume_view(self, request: HttpRequest) -> HttpResponse:
        """Lift a pause; needs ``django_jobs.delete_pause``."""
        posted = self._posted(request, RESUME_PERMISSION)
        if isinstance(posted, HttpResponse):
            return posted
        kind, value = posted
        label = _label(kind, value)
        pauses = Pause.objects.db_manager(jobs_settings.DATABASE)
        pause = pauses.filter(kind=kind, value=value).first()
        if pause is not None and pauses.resume(kind, value):
            audit.log_objects(request.user, [pause], audit.DELETION, "Resumed from the overview.")
            self.message_user(
                request, f"Resumed {label}: workers claim its jobs again.", messages.SUCCESS
            )
        else:
            self.message_user(request, f"Nothing to do: {label} was not paused.", messages.WARNING)
        return self._redirect()


def _limit_row(u: stats.LimitUsage) -> dict[str, Any]:
    """One limited queue or job name: its use of each limit, and who set it."""
    words = u.in_words()
    return {
        "scope": u.scope,
        "label": "Queue" if u.scope == "queue" else "Job",
        "target": u.target,
        "concurrency": words["concurrency"] or "—",
        "rate": words["rate"] or "—",
        "keys": words["keys"] or "—",
        "source": words["source"],
        "note": u.note,
        "full": u.full,
    }


def _label(kind: str, value: str) -> str:
    return f"the queue {value!r}" if kind == Pause.Kind.QUEUE else f"the job {value!r}"
