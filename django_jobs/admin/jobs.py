"""The job list, a job's page, and the dead letters grouped by error."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, F, Max, Min, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join

from .. import timeline
from ..conf import jobs_settings
from ..db import gates
from ..db.connection import retrying_deadlocks
from ..diagnose import diagnose
from ..models import READY_STATUSES, Job, JobStatus
from ..readable import run_time, short_moment
from ..registry import registry
from . import display, workflow
from .charts import CHART_PARAMETER, chart_context
from .filters import FlowKeyFilter, NameFilter, QueueFilter
from .paginator import EstimatedCountPaginator
from .verbs import VerbAdmin

#: The flow-control keys a job may have been enqueued with; its page shows those it has.
FLOW_KEYS = ("concurrency_key", "rate_key", "sequence_key")
#: Dead-letter groups listed above the dead jobs.
DEAD_LETTER_GROUPS_SHOWN = 50
#: The query parameter that searches every job rather than the newest (JobAdmin.search_window).
SEARCH_ALL = "search_all"


class JobChangeList(ChangeList):
    """The job list: its rows without the JSON columns, which only the job's own page shows."""

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        #: The lowest id a text search looked at (None: it looked at every job), and the link
        #: that searches every job (see JobAdmin.get_search_results).
        self.search_from: int | None = getattr(request, "_django_jobs_search_from", None)
        self.search_all_url = self.get_query_string({SEARCH_ALL: "1"})

    def get_filters_params(self, params: Any = None) -> Any:
        # Not a filter: the list would refuse it as an unknown lookup. It stays in the query
        # string, so the next page searches as this one did.
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(SEARCH_ALL, None)
        return lookup_params

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer("args", "kwargs", "result", "history")

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if not (self.has_active_filters or self.query):
            # Unfiltered, the count is the total: no "N results (Show all)" by the search box.
            self.full_result_count = self.result_count


class _JobAdminBase(VerbAdmin):
    """What the job list and the dead letters share: read-only rows, verbs as actions."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    #: A text search looks at this many of the newest jobs (by id) unless asked for every one;
    #: None: always every one. A search for a job's id finds it wherever it is.
    search_window: int | None = None
    show_facets = admin.ShowFacets.NEVER
    # Only the primary key has an index that serves an ORDER BY over the whole table.
    sortable_by = ("job_id",)
    list_per_page = 50
    search_fields = ("name", "unique_key", "last_error", "concurrency_key", "rate_key", "sequence_key")
    search_help_text = (
        "A job's id (or #id), or text in the name, unique key, last error, or a concurrency, rate "
        "or sequence key."
    )
    change_form_template = "admin/django_jobs/job/change_form.html"

    class Media:
        css = {"all": ["django_jobs/admin.css"]}

    # -- permissions: look, don't edit; act through the verbs ----------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # A delete locks its rows in its own order while workers write outcomes and lock the jobs
    # downstream of them in theirs: when PostgreSQL aborts the delete to break a deadlock, it runs
    # again rather than fail the page (what the verbs do too: JobQuerySet._locked_batch).

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        delete = super().delete_model
        retrying_deadlocks(obj._state.db or jobs_settings.DATABASE, lambda: delete(request, obj))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        delete = super().delete_queryset
        retrying_deadlocks(queryset.db, lambda: delete(request, queryset))

    # -- the list ---------------------------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        number = term.removeprefix("#")
        # isdecimal(), not isdigit(): "²" is a digit that int() refuses.
        if number.isdecimal() and int(number) < 2**63:
            # An id, looked up by its index instead of scanning every row's text for it; only a
            # number that is no job's id is looked for as text (a unique key, say).
            by_id = queryset.filter(pk=int(number))
            if by_id.exists():
                return by_id, False
        if term and self.search_window and request.GET.get(SEARCH_ALL) != "1":
            # No index serves a substring, so a term no job has reads every row to say so: 1.3 s
            # at a million jobs, 9 s at ten million. The newest jobs, by id, are what an operator
            # searches; the list says how far it looked and links to a search of every job.
            newest = Job.objects.using(queryset.db).aggregate(newest=Max("pk"))["newest"] or 0
            if newest > self.search_window:
                lowest = newest - self.search_window + 1
                request._django_jobs_search_from = lowest  # type: ignore[attr-defined]
                queryset = queryset.filter(pk__gte=lowest)
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="ID", ordering="id")
    def job_id(self, obj: Job) -> str:
        return f"#{obj.pk}"

    @admin.display(description="Status")
    def status_badge(self, obj: Job) -> str:
        return display.status_badge(obj)

    @admin.display(description="Attempts")
    def attempts_column(self, obj: Job) -> str:
        return f"{obj.attempts} / {obj.max_attempts}"

    @admin.display(description="Age")
    def age(self, obj: Job) -> str:
        return display.format_duration(timezone.now() - obj.created_at)

    @admin.display(description="Duration")
    def duration(self, obj: Job) -> str:
        return run_time(
            obj.started_at, obj.finished_at, running=obj.status == JobStatus.RUNNING,
            now=timezone.now(),
        )

    @admin.display(description="Last error")
    def error(self, obj: Job) -> str:
        line = display.first_line(obj.last_error)
        if not line:
            return "—"
        # One line, cut by the stylesheet to the column's width; the whole line on hover.
        return format_html('<span title="{}">{}</span>', display.first_line(obj.last_error, 1000), line)

    @admin.display(description="Run at", ordering="run_at")
    def run_at_column(self, obj: Job) -> str:
        return short_moment(obj.run_at)

    @admin.display(description="Progress")
    def progress_column(self, obj: Job) -> str:
        return display.progress(obj, message_limit=60) or "—"

    # -- the job's page ---------------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        fieldsets: list[tuple[str | None, dict[str, Any]]] = []
        if obj.last_error:
            # Why it failed is what an operator opens a failed job for: first, with the latest
            # traceback, above the fold (tests/browser/test_layout.py).
            error_fields = ("last_error_text", "last_traceback") if display.last_traceback(obj.history) else (
                "last_error_text",
            )
            fieldsets.append(("Last error", {"fields": error_fields}))
        fieldsets += [
            (
                None,
                {
                    "fields": (
                        "job_id",
                        "name",
                        "status_badge",
                        "queue",
                        "priority",
                        "attempts_column",
                        "unique_key",
                        "worker_id",
                    )
                },
            ),
        ]
        keys = tuple(f"{k}_link" for k in FLOW_KEYS if getattr(obj, k))
        if keys:
            fieldsets.append(("Flow control", {"fields": keys}))
        if obj.status in READY_STATUSES or obj.status == JobStatus.WAITING:
            fieldsets.append(("Why isn't it running?", {"fields": ("diagnosis",)}))
        if workflow.has_workflow(obj):
            fieldsets.append(("Workflow", {"fields": ("workflow_section",)}))
        if obj.progress:
            fieldsets.append(("Progress", {"fields": ("progress_detail",)}))
        fieldsets.append(
            (
                "Times",
                {
                    "fields": (
                        "created_at",
                        "run_at",
                        "started_at",
                        "finished_at",
                        "duration",
                        "stop_requested_at",
                    )
                },
            )
        )
        if obj.schedule_id or obj.scheduled_for:
            # A link only for who may open the schedule's page (else it would answer 403).
            may_see = any(request.user.has_perm(f"django_jobs.{p}_schedule") for p in ("view", "change"))
            schedule = "schedule_link" if may_see else "schedule_name"
            fieldsets.append(("Schedule", {"fields": (schedule, "scheduled_for")}))
        fieldsets.append(("Arguments", {"fields": ("args_json", "kwargs_json")}))
        if obj.result is not None:
            fieldsets.append(("Result", {"fields": ("result_json",)}))
        fieldsets.append(("History", {"fields": ("history_table",)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [
            name for _, options in self.get_fieldsets(request, obj) for name in options["fields"]
        ]

    def _key_link(self, obj: Job, column: str) -> str:
        key = getattr(obj, column)
        url = reverse("admin:django_jobs_job_changelist") + "?" + urlencode({column: key})
        return format_html('<code>{}</code> · <a href="{}">every job with this key</a>', key, url)

    @admin.display(description="Concurrency key")
    def concurrency_key_link(self, obj: Job) -> str:
        return self._key_link(obj, "concurrency_key")

    @admin.display(description="Rate key")
    def rate_key_link(self, obj: Job) -> str:
        return self._key_link(obj, "rate_key")

    @admin.display(description="Sequence key")
    def sequence_key_link(self, obj: Job) -> str:
        link = self._key_link(obj, "sequence_key")
        definition = registry.get(obj.name)
        blocking = obj.status == JobStatus.DEAD and not (definition and definition.sequence_on_dead == "continue")
        waiting = gates.blocked_by(obj._state.db or "default", obj) if blocking else 0
        if not waiting:
            return link
        return format_html(
            '{}<p class="dj-blocked"><strong>This dead job blocks its sequence:</strong> {} later '
            "job(s) wait behind it. Retry it, stop it or delete it to let them run.</p>",
            link, waiting,
        )

    @admin.display(description="Reasons")
    def diagnosis(self, obj: Job) -> str:
        return format_html(
            '<ul class="dj-diagnosis">{}</ul>',
            format_html_join(
                "",
                '<li class="dj-reason dj-{}">{}</li>',
                ((r.code, r.message) for r in diagnose(obj)),
            ),
        )

    @admin.display(description="Jobs")
    def workflow_section(self, obj: Job) -> str:
        return workflow.render(obj, self.admin_site.name)

    @admin.display(description="Progress")
    def progress_detail(self, obj: Job) -> str:
        reported = (
            parse_datetime(str(obj.progress.get("at") or ""))
            if isinstance(obj.progress, dict)
            else None
        )
        when = ""
        if reported:
            when = f" (reported {display.format_duration(timezone.now() - reported)} ago)"
        return format_html("{}{}", display.progress(obj), when)

    @admin.display(description="Schedule")
    def schedule_link(self, obj: Job) -> str:
        if obj.schedule_id is None:
            return "— (its schedule was deleted)"
        url = reverse("admin:django_jobs_schedule_change", args=[obj.schedule_id])
        return format_html('<a href="{}">{}</a>', url, obj.schedule)

    @admin.display(description="Schedule")
    def schedule_name(self, obj: Job) -> str:
        return str(obj.schedule) if obj.schedule_id is not None else "— (its schedule was deleted)"

    @admin.display(description="Positional")
    def args_json(self, obj: Job) -> str:
        return display.json_block(obj.args)

    @admin.display(description="Keyword")
    def kwargs_json(self, obj: Job) -> str:
        return display.json_block(obj.kwargs)

    @admin.display(description="Returned")
    def result_json(self, obj: Job) -> str:
        return display.json_block(obj.result)

    @admin.display(description="Last error")
    def last_error_text(self, obj: Job) -> str:
        return format_html('<pre class="dj-error">{}</pre>', obj.last_error)

    @admin.display(description="Traceback")
    def last_traceback(self, obj: Job) -> str:
        return format_html('<pre class="dj-traceback dj-last">{}</pre>', display.last_traceback(obj.history))

    @admin.display(description="Attempts and events")
    def history_table(self, obj: Job) -> str:
        # The latest traceback is open at the top of the page when there is a last error.
        return display.history_table(obj.history, open_last=not obj.last_error)


class JobAdmin(_JobAdminBase):
    """Every job: find one, read its history, act on it or on every job a filter matches."""

    # What an operator looks for first comes first: which job, how it is, why it failed, how
    # many attempts it had and when it runs next. At 1400 px, beside the menu and the filters,
    # those fit the list's box; the rest may scroll (tests/browser/test_layout.py).
    list_display = (
        "job_id",
        "name",
        "status_badge",
        "error",
        "attempts_column",
        "run_at_column",
        "queue",
        "age",
        "duration",
        "progress_column",
    )
    list_display_links = ("job_id", "name")
    list_filter = (
        "status", QueueFilter, NameFilter, FlowKeyFilter, ("created_at", admin.DateFieldListFilter)
    )
    actions = ("retry_jobs", "stop_jobs", "dead_letter_jobs")
    verbs = ("retry", "stop", "dead-letter")
    search_window = 100_000

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        """The list; filtered to one job name, that name's charts above it (``?range=`` picks
        the period)."""
        view = timeline.view_named(request.GET.get(CHART_PARAMETER))
        if CHART_PARAMETER in request.GET:
            # Not a filter: the change list would refuse it as an unknown lookup.
            query = request.GET.copy()
            del query[CHART_PARAMETER]
            request.GET = query  # type: ignore[assignment]
        name = request.GET.get(NameFilter.parameter_name)
        if name and self.has_view_permission(request):
            charts = timeline.name_charts(jobs_settings.DATABASE, view, name, now=timezone.now())
            extra_context = {**(extra_context or {}), **chart_context(request, view, [("", charts)])}
        return super().changelist_view(request, extra_context)


class DeadLetterAdmin(_JobAdminBase):
    """Dead jobs, grouped by job name and error, to requeue a whole failure at once."""

    list_display = ("job_id", "name", "queue", "error", "attempts_column", "finished_at", "age")
    list_display_links = ("job_id", "name")
    list_filter = (QueueFilter, NameFilter, FlowKeyFilter, ("finished_at", admin.DateFieldListFilter))
    actions = ("retry_jobs",)
    verbs = ("retry",)
    # Newest first: the finished rows' partial index serves this order (status = 'dead' implies
    # its predicate).
    ordering = ("-finished_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).filter(status=JobStatus.DEAD)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        jobs = self.admin_site.get_model_admin(Job)
        if jobs.has_view_permission(request):
            # A dead letter is a job: its page is the job's, with the job's buttons (which act
            # on it whatever its status is by now: a retried job has left this list).
            return jobs.change_view(request, object_id, form_url, extra_context)
        # Who may see dead letters but not jobs gets the same page from here, while it is dead.
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", {}).get("cl")
        if cl is not None:
            response.context_data["groups"] = self._groups(request, cl.queryset)
            response.context_data["groups_shown"] = DEAD_LETTER_GROUPS_SHOWN
        return response

    def _groups(self, request: HttpRequest, queryset: QuerySet[Any]) -> list[dict[str, Any]]:
        """The dead jobs by name and error, newest failure first, each with its links."""
        groups = (
            queryset.order_by()
            .values("name", "last_error")
            .annotate(count=Count("pk"), newest=Max("finished_at"), oldest=Min("finished_at"))
            .order_by(F("newest").desc(nulls_last=True))[:DEAD_LETTER_GROUPS_SHOWN]
        )
        may_retry = self.has_retry_permission(request)
        rows = []
        for group in groups:
            query = urlencode({"name": group["name"], "last_error": group["last_error"]})
            rows.append(
                {
                    **group,
                    "error": (
                        display.first_line(group["last_error"], 200) or "(no error recorded)"
                    ),
                    "list_url": self._url("changelist", query=query),
                    "retry_url": self._url("bulk", "retry", query=query) if may_retry else None,
                }
            )
        return rows

