"""The admin: cron schedules you can edit, preview and act on; jobs and dead letters you can read
and act on (retry, stop, dead-letter, delete); pauses."""

from __future__ import annotations

import json
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Sequence
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ERROR_FLAG, ORDER_VAR, PAGE_VAR, ChangeList
from django.core.exceptions import EmptyResultSet, PermissionDenied
from django.core.paginator import Paginator
from django.db import InterfaceError, OperationalError, connections
from django.db.models import Count, F, Max, Min, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import ngettext

from . import admin_overview  # noqa: F401 - registers the overview page
from . import cron, overview
from .admin_overview import format_age
from .exceptions import InvalidCron
from .models import (
    DEAD_LETTER_FROM,
    READY_STATUSES,
    RETRY_FROM,
    STOP_FROM,
    DeadLetter,
    Job,
    JobStatus,
    Pause,
    Schedule,
    ScheduleQuerySet,
    Transitioned,
    Worker,
)
from .registry import registry
from .scheduler import describe_error

# -- schedules ------------------------------------------------------------------------------------

#: The fields a schedule declared in code takes from the code; the admin shows them read-only.
CODE_OWNED_FIELDS = ("name", "job_name", "args", "kwargs", "cron", "timezone", "queue", "priority", "catch_up")
PREVIEW_COUNT = 5


def _local(moment: datetime | None, timezone_name: str) -> str:
    """``moment`` on the schedule's wall clock: "2025-03-30 03:00 CEST"."""
    if moment is None:
        return "—"
    try:
        return moment.astimezone(cron.zone(timezone_name)).strftime("%Y-%m-%d %H:%M %Z")
    except InvalidCron:
        return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def _job_link(job: Job, text: str) -> str:
    """A link to the job's admin page when the Job admin is registered, else plain text."""
    try:
        url = reverse("admin:django_jobs_job_change", args=[job.pk])
    except NoReverseMatch:
        return text
    return format_html('<a href="{}">{}</a>', url, text)


def schedule_problems(schedule: Schedule) -> list[str]:
    """Why ``schedule`` doesn't fire as it should, for its page: an unknown job, a failed tick."""
    problems = []
    if schedule.job_name not in registry:
        problems.append(overview.unregistered_message(schedule))
    if schedule.last_error:
        problems.append(f"Its last due tick enqueued nothing: {schedule.last_error}")
    return problems


class PreviewWidget(forms.Widget):
    """Shows the cron in words and its next fire times, or why there are none; takes no input."""

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        if isinstance(value, tuple):
            words, times = value
            items = format_html_join("", "<li>{}</li>", ((t,) for t in times))
            return format_html('<div class="cron-preview"><strong>{}</strong><ol>{}</ol></div>', words, items)
        return format_html('<p class="help">{}</p>', value or "")


class ScheduleForm(forms.ModelForm):
    """A schedule's fields; the job is picked from the registered ones, the rest checked on save."""

    preview = forms.Field(
        label=f"Next {PREVIEW_COUNT} runs", required=False, disabled=True, widget=PreviewWidget,
        help_text="In the schedule's timezone, from the cron and timezone saved or just submitted.",
    )

    class Meta:
        model = Schedule
        fields = ["name", "job_name", "args", "kwargs", "cron", "timezone", "catch_up", "enabled", "queue", "priority"]
        widgets = {
            "cron": forms.TextInput(attrs={"placeholder": "5 0 * * *", "class": "vTextField", "spellcheck": "false"}),
            "timezone": forms.TextInput(attrs={"list": "django-jobs-timezones", "class": "vTextField"}),
            "args": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "kwargs": forms.Textarea(attrs={"rows": 3, "cols": 60}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "job_name" in self.fields:
            names = registry.names()
            current = self.instance.job_name if self.instance.pk else ""
            choices = [("", "---------")] + [(n, n) for n in names]
            if current and current not in names:
                # Keep it selectable so saving says why it is wrong instead of "not a valid choice".
                choices.append((current, f"{current} (not registered)"))
            old = self.fields["job_name"]
            self.fields["job_name"] = forms.ChoiceField(
                choices=choices, label=old.label, help_text=old.help_text,
                error_messages={"invalid_choice": (
                    "No job is registered as '%(value)s'. Pick one of the registered jobs: they "
                    "are the functions decorated with @job in the jobs.py modules of installed apps."
                )},
            )
        if "timezone" in self.fields:
            self.fields["timezone"].help_text = format_html(
                '{}<datalist id="django-jobs-timezones">{}</datalist>',
                self.fields["timezone"].help_text,
                format_html_join("", '<option value="{}">', ((z,) for z in sorted(zoneinfo.available_timezones()))),
            )
        self.fields["preview"].initial = self._preview()

    def _preview(self) -> tuple[str, list[str]] | str:
        if self.is_bound and "cron" in self.fields:
            expression = self.data.get(self.add_prefix("cron"), "")
            timezone_name = self.data.get(self.add_prefix("timezone"), "")
        elif self.instance.pk:
            expression, timezone_name = self.instance.cron, self.instance.timezone
        else:
            return "Save the schedule (or submit it with errors elsewhere) to see its next runs."
        try:
            expression = cron.parse(expression)
            times = cron.next_times(expression, timezone_name, timezone.now(), PREVIEW_COUNT)
        except InvalidCron as exc:
            return f"No preview: {exc}"
        zone = cron.zone(timezone_name)
        return cron.describe(expression), [t.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z") for t in times]

    def clean_cron(self) -> str:
        value = self.cleaned_data["cron"]
        try:
            return cron.parse(value)
        except InvalidCron:
            return value  # clean() reports it, with the other problems

    def clean(self) -> dict[str, Any]:
        data = super().clean() or self.cleaned_data
        if self.instance.pk and self.instance.source == Schedule.Source.CODE:
            return data  # the code owns (and its worker checked) everything shown read-only here
        probe = Schedule(**{f: data.get(f, getattr(self.instance, f)) for f in ("job_name", "cron", "timezone", "args", "kwargs")})
        for field, message in probe.problems().items():
            if field in self.errors:
                continue  # e.g. invalid JSON: one error per field is enough
            self.add_error(field if field in self.fields else None, message)
        return data


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = ("name", "rhythm", "timezone", "next_run", "last_run", "enabled", "source")
    list_filter = ("enabled", "source", "catch_up")
    search_fields = ("name", "job_name")
    list_select_related = ("last_job",)
    actions = ("run_now", "enable", "disable")
    readonly_fields = ("attention", "next_run", "last_run", "last_error", "source", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "job_name", "args", "kwargs")}),
        ("When", {"fields": ("cron", "timezone", "preview", "catch_up", "enabled")}),
        ("Overrides", {"fields": ("queue", "priority"), "classes": ("collapse",)}),
        ("State", {"fields": ("next_run", "last_run", "last_error", "source", "created_at", "updated_at")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        fieldsets = tuple(super().get_fieldsets(request, obj))
        if obj is not None and schedule_problems(obj):
            # First on the page: a schedule that doesn't fire must not look like one that does.
            return (("Needs attention", {"fields": ("attention",)}), *fieldsets)
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and obj.source == Schedule.Source.CODE:
            # Declared in code: a worker start would overwrite edits, so only `enabled` is open.
            fields = CODE_OWNED_FIELDS + fields
        return fields

    def has_delete_permission(self, request: HttpRequest, obj: Schedule | None = None) -> bool:
        if obj is not None and obj.source == Schedule.Source.CODE:
            return False  # it would come back at the next worker start; remove it from the code
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        if change:
            # Only what the form changed: the scheduler may have fired the schedule (moving
            # next_run_at, last_run_at, last_job) since this page was loaded.
            fields = [f for f in form.changed_data if f in {x.name for x in Schedule._meta.fields}]
            obj.save(update_fields=[*fields, "updated_at"])
        else:
            obj.save()

    @admin.display(description="Schedule", ordering="cron")
    def rhythm(self, obj: Schedule) -> str:
        return format_html('{}<br><code class="quiet">{}</code>', obj.describe(), obj.cron)

    @admin.display(description="Problems")
    def attention(self, obj: Schedule) -> str:
        return format_html(
            '<ul class="errorlist">{}</ul>',
            format_html_join("", "<li>{}</li>", ((p,) for p in schedule_problems(obj))),
        )

    @admin.display(description="Next run", ordering="next_run_at")
    def next_run(self, obj: Schedule) -> str:
        if obj.job_name not in registry:
            return format_html(
                '{}<br><span class="errornote">Never: no job named {} is registered.</span>',
                _local(None, obj.timezone), obj.job_name,
            )
        return _local(obj.next_run_at, obj.timezone)

    @admin.display(description="Last run", ordering="last_run_at")
    def last_run(self, obj: Schedule) -> str:
        text = _local(obj.last_run_at, obj.timezone)
        if obj.last_job is not None:
            text = format_html("{} · {}", text, _job_link(obj.last_job, obj.last_job.get_status_display()))
        if obj.last_error:
            error = obj.last_error if len(obj.last_error) <= 120 else obj.last_error[:119] + "…"
            text = format_html('{}<br><span class="errornote">{}</span>', text, error)
        return text

    @admin.action(description="Run now (one job, outside the schedule)", permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: ScheduleQuerySet) -> None:
        enqueued: list[str] = []
        for schedule in queryset:
            try:
                job = schedule.run_now()
            except (OperationalError, InterfaceError):
                raise  # the database is gone: Django's error page says so
            except Exception as exc:  # noqa: BLE001 - e.g. a job_enqueued receiver that raises
                message = f"{schedule.name}: nothing enqueued: {describe_error(exc)}"
                self.message_user(request, message, messages.ERROR)
                continue
            enqueued.append(f"{schedule.name} (job #{job.pk})")
        if enqueued:
            message = ngettext(
                "Enqueued %(count)d job: %(jobs)s.", "Enqueued %(count)d jobs: %(jobs)s.", len(enqueued)
            ) % {"count": len(enqueued), "jobs": ", ".join(enqueued)}
            self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Enable (from the next tick; missed ticks are not replayed)", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: ScheduleQuerySet) -> None:
        self._report_toggle(
            request, queryset, queryset.enable(),
            ("Enabled %(count)d schedule.", "Enabled %(count)d schedules."),
            ("%(count)d was already enabled.", "%(count)d were already enabled."),
        )

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: ScheduleQuerySet) -> None:
        self._report_toggle(
            request, queryset, queryset.disable(),
            ("Disabled %(count)d schedule.", "Disabled %(count)d schedules."),
            ("%(count)d was already disabled.", "%(count)d were already disabled."),
        )

    def _report_toggle(
        self, request: HttpRequest, queryset: ScheduleQuerySet, count: int,
        done: tuple[str, str], unchanged: tuple[str, str],
    ) -> None:
        skipped = queryset.count() - count
        message = ngettext(*done, count) % {"count": count}
        if skipped:
            message += " " + ngettext(*unchanged, skipped) % {"count": skipped}
        self.message_user(request, message, messages.SUCCESS if count else messages.WARNING)


# -- jobs: shared pieces ---------------------------------------------------------------------------

#: Pretty-printed JSON longer than this many characters is cut on the job's page.
JSON_SHOWN_MAX = 10_000
#: Rows of recent and ready jobs sampled for the queue and name filters' choices.
FILTER_SAMPLE = 1000
#: Dead-letter groups listed above the dead jobs.
DEAD_LETTER_GROUPS_SHOWN = 50


def format_duration(delta: timedelta | None) -> str:
    """A job's duration or age at a glance: "850 ms", "12.5 s", "3 min 20 s", "2 h 5 min"."""
    if delta is None:
        return "—"
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    return format_age(delta)


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _moment(value: Any) -> str:
    """A stored timestamp (datetime or ISO text from a history entry) on the site's clock."""
    moment = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return str(value or "—")
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _row(*cells: Any) -> str:
    return format_html("<tr>{}</tr>", format_html_join("", "<td>{}</td>", ((c,) for c in cells)))


def _json_block(value: Any) -> str:
    """``value`` pretty-printed in a <pre>, cut after JSON_SHOWN_MAX characters."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) <= JSON_SHOWN_MAX:
        return format_html('<pre class="dj-json">{}</pre>', text)
    return format_html(
        '<pre class="dj-json">{}\n…</pre><p class="help">{}</p>',
        text[:JSON_SHOWN_MAX],
        f"Truncated: the first {JSON_SHOWN_MAX:,} of {len(text):,} characters.",
    )


def _sample(request: HttpRequest, field_name: str) -> set[str]:
    """Values of ``field_name`` among the newest and the ready jobs: two bounded index reads,
    however many rows the table holds (a DISTINCT over the table would read every row)."""
    cache = getattr(request, "_django_jobs_sample", None)
    if cache is None:
        newest = Job.objects.order_by("-id").values_list("queue", "name")[:FILTER_SAMPLE]
        ready = (
            Job.objects.filter(status__in=READY_STATUSES).order_by().values_list("queue", "name")
        )
        rows = [*newest, *ready[:FILTER_SAMPLE]]
        cache = {"queue": {q for q, _ in rows}, "name": {n for _, n in rows}}
        request._django_jobs_sample = cache  # type: ignore[attr-defined]
    return cache[field_name]


def known_queue_names(request: HttpRequest) -> set[str]:
    """Queues worth offering: configured, registered, served, paused or scheduled, and sampled."""
    queues = overview.known_queues()
    for served in Worker.objects.values_list("queues", flat=True):
        queues.update(served or [])
    queues.update(Pause.objects.filter(kind=Pause.Kind.QUEUE).values_list("value", flat=True))
    queues.update(Schedule.objects.exclude(queue="").values_list("queue", flat=True))
    return queues | _sample(request, "queue")


def known_job_names(request: HttpRequest) -> set[str]:
    """Job names worth offering: registered, paused or scheduled, and sampled."""
    names = set(registry.names())
    names.update(Pause.objects.filter(kind=Pause.Kind.NAME).values_list("value", flat=True))
    names.update(Schedule.objects.values_list("job_name", flat=True))
    return names | _sample(request, "name")


class _ValueFilter(admin.SimpleListFilter):
    """Filter on one column, offering known values instead of a DISTINCT over the whole table."""

    def known(self, request: HttpRequest) -> set[str]:
        raise NotImplementedError

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # The chosen value is always offered, so the filter shows (and applies) even for a value
        # none of the known sources has, e.g. from a dead-letter group's link.
        value = self.value()
        values = self.known(request) | ({value} if value else set())
        return [(v, v) for v in sorted(values)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{str(self.parameter_name): value}) if value else queryset


class QueueFilter(_ValueFilter):
    title = "queue"
    parameter_name = "queue"

    def known(self, request: HttpRequest) -> set[str]:
        return known_queue_names(request)


class NameFilter(_ValueFilter):
    title = "job name"
    parameter_name = "name"

    def known(self, request: HttpRequest) -> set[str]:
        return known_job_names(request)


class EstimatedCountPaginator(Paginator):
    """Counts exactly up to ``exact_up_to`` rows and takes the planner's estimate beyond.

    ``COUNT(*)`` over millions of jobs takes seconds on every page load. Here the planner's
    estimate (``EXPLAIN``, which reads no rows) decides first: above the limit it is the
    count; below it a count capped at the limit (``LIMIT`` in a subquery) gives the exact figure
    at the cost of at most that many index entries. ``estimated`` tells the template to say
    "about".
    """

    exact_up_to = 1000
    estimated = False

    @property
    def count_label(self) -> str:
        """The count for people: "about 1,200,000" when estimated."""
        return f"about {self.count:,}" if self.estimated else f"{self.count:,}"

    @cached_property
    def count(self) -> int:
        queryset = self.object_list.order_by()  # type: ignore[attr-defined]
        estimate = self._planner_rows(queryset)
        if estimate is not None and estimate > self.exact_up_to:
            self.estimated = True
            return estimate
        capped = queryset.values("pk")[: self.exact_up_to + 1].count()
        if capped <= self.exact_up_to:
            return capped
        self.estimated = True
        return max(capped, estimate or 0)

    @staticmethod
    def _planner_rows(queryset: QuerySet[Any]) -> int | None:
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        try:
            sql, params = queryset.values("pk").query.sql_with_params()
        except EmptyResultSet:
            # A lookup no row can match, e.g. ?priority=99999999999999999999 (beyond the
            # column's range): Django builds no SQL for it, and the list is empty.
            return 0
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])


class JobChangeList(ChangeList):
    """The job list: its rows without the JSON columns, which only the job's own page shows."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer("args", "kwargs", "result", "history")

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if not (self.has_active_filters or self.query):
            # Unfiltered, the count is the total: no "N results (Show all)" by the search box.
            self.full_result_count = self.result_count


# -- jobs: what the operator's verbs say ----------------------------------------------------------


@dataclass(frozen=True)
class Verb:
    """An operator transition as the admin offers it: buttons, permission, confirmation, report."""

    #: The JobQuerySet method, and has_<name>_permission on the admin.
    name: str
    slug: str
    label: str
    permission: str
    allowed: tuple[str, ...]
    #: Past tense for one job, and the ngettext pair for the report.
    past: str
    done: tuple[str, str]
    #: What the confirmation page says it does.
    explanation: str
    #: Why a job is skipped, by the status (or Transitioned key) it had: (one, many).
    skips: dict[str, tuple[str, str]]
    takes_note: bool = False

    def skip_reason(self, key: str, count: int) -> str:
        one, many = self.skips.get(key, (f"it is {key}", f"they are {key}"))
        return ngettext(one, many, count)

    def outcome(self, status: str, count: int) -> str:
        """What happens to ``count`` jobs of ``status``, for the confirmation page."""
        if status not in self.allowed:
            return f"skipped: {self.skip_reason(status, count)}"
        if self.name == "stop" and status == JobStatus.RUNNING:
            return "asked to stop"
        return self.past

    def report(self, result: Transitioned) -> str:
        """ "3 jobs retried; 1 skipped: it is running." """
        parts = []
        if self.name == "stop":
            asked = result.done[JobStatus.RUNNING]
            stopped = result.done_count - asked
            if stopped or not asked:
                parts.append(ngettext(*self.done, stopped) % {"count": stopped})
            if asked:
                parts.append(
                    ngettext(
                        "%(count)d running job asked to stop",
                        "%(count)d running jobs asked to stop",
                        asked,
                    )
                    % {"count": asked}
                )
        else:
            parts.append(ngettext(*self.done, result.done_count) % {"count": result.done_count})
        for key, count in sorted(result.skipped.items()):
            parts.append(f"{count} skipped: {self.skip_reason(key, count)}")
        return "; ".join(parts) + "."

    def report_one(self, job: Job, result: Transitioned) -> str:
        """ "Job #12 retried." or "Job #12 not retried: it is running." """
        if result.done_count:
            past = (
                "asked to stop"
                if result.done[JobStatus.RUNNING] and self.name == "stop"
                else self.past
            )
            return f"Job #{job.pk} {past}."
        (key,) = result.skipped or {job.status: 1}
        return f"Job #{job.pk} not {self.past}: {self.skip_reason(key, 1)}."


_SUCCEEDED = ("it succeeded", "they succeeded")
VERBS = {
    verb.slug: verb
    for verb in (
        Verb(
            name="retry",
            slug="retry",
            label="Retry",
            permission="django_jobs.retry_job",
            allowed=tuple(RETRY_FROM),
            past="retried",
            done=("%(count)d job retried", "%(count)d jobs retried"),
            explanation="Dead, stopped and retrying jobs go back to the queue, due now, their "
            "history kept; a dead or stopped job gets a fresh set of attempts.",
            skips={
                JobStatus.QUEUED: ("it is already queued", "they are already queued"),
                JobStatus.RUNNING: ("it is running", "they are running"),
                JobStatus.SUCCEEDED: _SUCCEEDED,
                "key_taken": (
                    "another waiting or running job holds its unique_key",
                    "other waiting or running jobs hold their unique_key",
                ),
            },
        ),
        Verb(
            name="stop",
            slug="stop",
            label="Stop",
            permission="django_jobs.stop_job",
            allowed=tuple(STOP_FROM),
            past="stopped",
            done=("%(count)d job stopped", "%(count)d jobs stopped"),
            explanation="Queued and retrying jobs end stopped at once; running jobs are asked to "
            "stop and get STOP_GRACE seconds to return before their process is killed.",
            skips={
                JobStatus.SUCCEEDED: ("it already succeeded", "they already succeeded"),
                JobStatus.STOPPED: ("it is already stopped", "they are already stopped"),
                JobStatus.DEAD: ("it is dead", "they are dead"),
                "stopping": ("it was already asked to stop", "they were already asked to stop"),
            },
        ),
        Verb(
            name="dead_letter",
            slug="dead-letter",
            label="Dead-letter",
            permission="django_jobs.deadletter_job",
            allowed=tuple(DEAD_LETTER_FROM),
            past="dead-lettered",
            done=("%(count)d job dead-lettered", "%(count)d jobs dead-lettered"),
            explanation="Queued, retrying and stopped jobs end dead, with your note in their "
            "history; they stay on the dead letters page until retried or pruned.",
            skips={
                JobStatus.RUNNING: (
                    "it is running: stop it first",
                    "they are running: stop them first",
                ),
                JobStatus.SUCCEEDED: _SUCCEEDED,
                JobStatus.DEAD: ("it is already dead", "they are already dead"),
            },
            takes_note=True,
        ),
    )
}


class NoteForm(forms.Form):
    note = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        help_text="Why, for whoever finds these jobs later: it goes into each job's history.",
    )


# -- jobs: the admins -----------------------------------------------------------------------------


class _JobAdminBase(admin.ModelAdmin):
    """What the job list and the dead letters share: read-only rows, verbs as actions."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    # Only the primary key has an index that serves an ORDER BY over the whole table.
    sortable_by = ("job_id",)
    list_per_page = 50
    search_fields = ("name", "unique_key", "last_error")
    search_help_text = "A job's id (or #id), or text in the name, unique key or last error."
    change_form_template = "admin/django_jobs/job/change_form.html"
    verbs: tuple[str, ...] = ()

    class Media:
        css = {"all": ["django_jobs/admin.css"]}

    # -- permissions: look, don't edit; act through the verbs ----------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(VERBS["retry"].permission)

    def has_stop_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(VERBS["stop"].permission)

    def has_dead_letter_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(VERBS["dead-letter"].permission)

    def may(self, request: HttpRequest, verb: Verb) -> bool:
        return bool(getattr(self, f"has_{verb.name}_permission")(request))

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
        return super().get_search_results(request, queryset, search_term)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        action = request.POST.get("action") if request.method == "POST" else None
        if action and action not in self.get_actions(request):
            # Django would show the list again as if nothing was asked; refuse it plainly.
            raise PermissionDenied
        query = self._filter_query(request)
        links = [
            {"verb": verb, "url": self._url("bulk", verb.slug, query=query)}
            for slug in self.verbs
            if self.may(request, verb := VERBS[slug])
        ]
        return super().changelist_view(request, {"bulk_links": links, **(extra_context or {})})

    @admin.display(description="ID", ordering="id")
    def job_id(self, obj: Job) -> str:
        return f"#{obj.pk}"

    @admin.display(description="Status")
    def status_badge(self, obj: Job) -> str:
        label = obj.get_status_display()
        if obj.status == JobStatus.RUNNING and obj.stop_requested_at:
            label += " · stopping"
        return format_html('<span class="dj-badge dj-{}">{}</span>', obj.status, label)

    @admin.display(description="Attempts")
    def attempts_column(self, obj: Job) -> str:
        return f"{obj.attempts} / {obj.max_attempts}"

    @admin.display(description="Age")
    def age(self, obj: Job) -> str:
        return format_duration(timezone.now() - obj.created_at)

    @admin.display(description="Duration")
    def duration(self, obj: Job) -> str:
        if obj.started_at is None:
            return "—"
        if obj.status == JobStatus.RUNNING:
            return f"{format_duration(timezone.now() - obj.started_at)} so far"
        if obj.finished_at is None or obj.finished_at < obj.started_at:
            return "—"
        return format_duration(obj.finished_at - obj.started_at)

    @admin.display(description="Last error")
    def error(self, obj: Job) -> str:
        return _first_line(obj.last_error) or "—"

    @admin.display(description="Progress")
    def progress_column(self, obj: Job) -> str:
        return self._progress(obj, message_limit=60) or "—"

    def _progress(self, obj: Job, message_limit: int | None = None) -> str:
        progress = obj.progress if isinstance(obj.progress, dict) else None
        if not progress:
            return ""
        percent, message = progress.get("percent"), str(progress.get("message") or "")
        if message_limit:
            message = _first_line(message, message_limit)
        bar = ""
        if isinstance(percent, (int, float)):
            percent = max(0.0, min(100.0, float(percent)))
            bar = format_html(
                '<progress max="100" value="{}"></progress> {}% ', f"{percent:g}", f"{percent:g}"
            )
        return format_html('<span class="dj-progress">{}{}</span>', bar, message)

    # -- the job's page ---------------------------------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
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
        if obj.status in READY_STATUSES:
            fieldsets.append(("Why isn't it running?", {"fields": ("diagnosis",)}))
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
        if obj.last_error:
            fieldsets.append(("Last error", {"fields": ("last_error_text",)}))
        fieldsets.append(("History", {"fields": ("history_table",)}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [
            name for _, options in self.get_fieldsets(request, obj) for name in options["fields"]
        ]

    @admin.display(description="Reasons")
    def diagnosis(self, obj: Job) -> str:
        from .diagnose import diagnose

        return format_html(
            '<ul class="dj-diagnosis">{}</ul>',
            format_html_join(
                "",
                '<li class="dj-reason dj-{}">{}</li>',
                ((r.code, r.message) for r in diagnose(obj)),
            ),
        )

    @admin.display(description="Progress")
    def progress_detail(self, obj: Job) -> str:
        reported = (
            parse_datetime(str(obj.progress.get("at") or ""))
            if isinstance(obj.progress, dict)
            else None
        )
        when = f" (reported {format_duration(timezone.now() - reported)} ago)" if reported else ""
        return format_html("{}{}", self._progress(obj), when)

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
        return _json_block(obj.args)

    @admin.display(description="Keyword")
    def kwargs_json(self, obj: Job) -> str:
        return _json_block(obj.kwargs)

    @admin.display(description="Returned")
    def result_json(self, obj: Job) -> str:
        return _json_block(obj.result)

    @admin.display(description="Last error")
    def last_error_text(self, obj: Job) -> str:
        return format_html('<pre class="dj-error">{}</pre>', obj.last_error)

    @admin.display(description="Attempts and events")
    def history_table(self, obj: Job) -> str:
        entries = obj.history if isinstance(obj.history, list) else []
        if not entries:
            return "No attempt has finished yet."
        rows = [
            self._history_row(entry, last=i == len(entries) - 1) for i, entry in enumerate(entries)
        ]
        return format_html(
            '<table class="dj-history"><thead><tr><th>Attempt</th><th>Outcome</th><th>Worker</th>'
            "<th>Started</th><th>Finished</th><th>Duration</th><th>Details</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            format_html_join("", "{}", ((row,) for row in rows)),
        )

    def _history_row(self, entry: Any, last: bool) -> str:
        if not isinstance(entry, dict):
            return _row("—", "?", "", "", "", "", format_html("<pre>{}</pre>", json.dumps(entry)))
        if "event" in entry:
            note = entry.get("note") or ""
            at = _moment(entry.get("at"))
            return _row("—", entry["event"], "", "", at, "", f"Note: {note}" if note else "")
        details = []
        error = entry.get("error")
        if isinstance(error, dict):
            message = f"{error.get('class', '')}: {error.get('message', '')}"
            traceback = str(error.get("traceback") or "")
            details.append(format_html('<div class="dj-error">{}</div>', message))
            if traceback:
                details.append(
                    format_html(
                        '<details{}><summary>Traceback</summary>{}</details>',
                        " open" if last else "",
                        format_html('<pre class="dj-traceback">{}</pre>', traceback),
                    )
                )
        for key, label in (("retry_at", "next attempt due"), ("run_at", "runs again at")):
            if entry.get(key):
                details.append(format_html("<div>{} {}</div>", label, _moment(entry[key])))
        for key, label in (("reason", "reason"), ("rescued_by", "rescued by")):
            if entry.get(key):
                details.append(format_html("<div>{}: {}</div>", label, entry[key]))
        duration = entry.get("duration")
        took = timedelta(seconds=duration) if isinstance(duration, float | int) else None
        return _row(
            entry.get("attempt", "—"),
            entry.get("outcome", "—"),
            entry.get("worker", "—"),
            _moment(entry.get("started_at")),
            _moment(entry.get("finished_at")),
            format_duration(took),
            format_html_join("", "{}", ((d,) for d in details)),
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        job = self.get_object(request, unquote(object_id))
        buttons = []
        if job is not None:
            for verb in VERBS.values():
                if (
                    verb.slug not in self.verbs
                    or not self.may(request, verb)
                    or job.status not in verb.allowed
                ):
                    continue
                if verb.name == "stop" and job.stop_requested_at:
                    continue
                buttons.append(
                    {
                        "verb": verb,
                        "url": self._url("one", job.pk, verb.slug),
                        "post": not verb.takes_note,
                    }
                )
        return super().change_view(
            request, object_id, form_url, {"job_buttons": buttons, **(extra_context or {})}
        )

    # -- the verbs' views -------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        info = self.opts.app_label, self.opts.model_name
        return [
            path("all/<slug:slug>/", wrap(self.bulk_view), name="%s_%s_bulk" % info),
            path("<path:object_id>/do/<slug:slug>/", wrap(self.one_view), name="%s_%s_one" % info),
            *super().get_urls(),
        ]

    def _url(self, view: str, *args: Any, query: str = "") -> str:
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}", args=args)
        return f"{url}?{query}" if query else url

    def _tell(self, request: HttpRequest, result: Transitioned, message: str) -> None:
        self.message_user(
            request, message, messages.SUCCESS if result.done_count else messages.WARNING
        )

    def _verb(self, request: HttpRequest, slug: str) -> Verb:
        verb = VERBS.get(slug)
        if verb is None or slug not in self.verbs:
            raise Http404(f"No operator action called {slug!r}.")
        if not (self.has_view_permission(request) and self.may(request, verb)):
            raise PermissionDenied
        return verb

    @staticmethod
    def _filter_query(request: HttpRequest) -> str:
        """The list's filters and search from the query string, without its page and sort."""
        query = request.GET.copy()
        for key in (PAGE_VAR, ORDER_VAR, ERROR_FLAG):
            query.pop(key, None)
        return query.urlencode()

    def _page_after(self, request: HttpRequest, job: Job) -> str:
        """Where a verb on one job leads back to: the job's page, if this user may see jobs."""
        if self.admin_site.get_model_admin(Job).has_view_permission(request):
            return reverse("admin:django_jobs_job_change", args=[job.pk])
        # Only dead letters: the job may have left them (a retry), so back to the list.
        return self._url("changelist")

    def one_view(self, request: HttpRequest, object_id: str, slug: str) -> HttpResponse:
        """One job, from the buttons on its page: POST acts; a dead-letter asks for a note first."""
        verb = self._verb(request, slug)
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404(f"No job with id {object_id!r}.")
        back = self._page_after(request, job)
        form = NoteForm(request.POST or None) if verb.takes_note else None
        if request.method != "POST":
            if form is None:
                return HttpResponseNotAllowed(["POST"])
            return self._confirm(request, verb, Job.objects.filter(pk=job.pk), back=back, form=form)
        if form is not None and not form.is_valid():
            return self._confirm(request, verb, Job.objects.filter(pk=job.pk), back=back, form=form)
        result = self._perform(request, verb, Job.objects.filter(pk=job.pk), form)
        self._tell(request, result, verb.report_one(job, result))
        return HttpResponseRedirect(back)

    def bulk_view(self, request: HttpRequest, slug: str) -> HttpResponse:
        """Every job matching the list's filters and search (the query string), however many:
        GET counts them and asks; POST acts, in batches."""
        verb = self._verb(request, slug)
        query = self._filter_query(request)
        back = self._url("changelist", query=query)
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:
            self.message_user(
                request, "Those filters don't apply to jobs; nothing was changed.", messages.ERROR
            )
            return HttpResponseRedirect(self._url("changelist"))
        form = NoteForm(request.POST or None) if verb.takes_note else None
        if request.method == "POST" and (form is None or form.is_valid()):
            result = self._perform(request, verb, queryset, form)
            self._tell(request, result, verb.report(result))
            return HttpResponseRedirect(back)
        filters = [(key, ", ".join(request.GET.getlist(key))) for key in request.GET]
        return self._confirm(
            request,
            verb,
            queryset,
            back=back,
            form=form,
            filters=filters or [("(none)", "every job")],
        )

    def _act_on_selection(
        self, request: HttpRequest, queryset: QuerySet[Any], verb: Verb
    ) -> HttpResponse | None:
        """A changelist action: confirm first, with the counts; act when confirmed."""
        if request.POST.get("select_across") == "1":
            # "Select all N": the jobs matching the filter, which the bulk view handles in batches.
            query = self._filter_query(request)
            return HttpResponseRedirect(self._url("bulk", verb.slug, query=query))
        form = NoteForm(request.POST) if verb.takes_note else None
        if request.POST.get("confirm") == "yes" and (form is None or form.is_valid()):
            result = self._perform(request, verb, queryset, form)
            self._tell(request, result, verb.report(result))
            return None
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        hidden = [("action", request.POST["action"]), ("confirm", "yes")]
        hidden += [(helpers.ACTION_CHECKBOX_NAME, pk) for pk in selected]
        return self._confirm(
            request,
            verb,
            queryset,
            back=request.get_full_path(),
            form=NoteForm() if verb.takes_note else None,
            hidden=hidden,
        )

    def _perform(
        self, request: HttpRequest, verb: Verb, queryset: QuerySet[Any], form: NoteForm | None
    ) -> Transitioned:
        if verb.name == "stop":
            # What a waiting job's last_error will say: who stopped it.
            arguments = [f"stopped by {request.user.get_username()} in the admin"]
        else:
            arguments = [form.cleaned_data["note"]] if form is not None else []
        return getattr(queryset, verb.name)(*arguments)

    def _confirm(
        self,
        request: HttpRequest,
        verb: Verb,
        queryset: QuerySet[Any],
        *,
        back: str,
        form: NoteForm | None = None,
        hidden: Sequence[tuple[str, Any]] = (),
        filters: Sequence[tuple[str, str]] = (),
    ) -> HttpResponse:
        """The page that says what a verb would do to these jobs, by name and status, and asks."""
        groups = (
            queryset.order_by()
            .values("name", "status")
            .annotate(count=Count("pk"))
            .order_by("name", "status")
        )
        rows = [{**g, "outcome": verb.outcome(g["status"], g["count"])} for g in groups]
        will = sum(r["count"] for r in rows if r["status"] in verb.allowed)
        total = sum(r["count"] for r in rows)
        past = "stopped (or, if running, asked to stop)" if verb.name == "stop" else verb.past
        summary = ngettext(
            "%(will)d of %(total)d job will be %(past)s; %(skipped)d skipped.",
            "%(will)d of %(total)d jobs will be %(past)s; %(skipped)d skipped.",
            total,
        ) % {"will": will, "total": total, "past": past, "skipped": total - will}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{verb.label}: are you sure?",
            "verb": verb,
            "rows": rows,
            "total": total,
            "will": will,
            "summary": summary,
            "form": form,
            "hidden": hidden,
            "filters": filters,
            "back": back,
        }
        return TemplateResponse(request, "admin/django_jobs/confirm_jobs.html", context)

    @admin.action(description="Retry the selected jobs…", permissions=["retry"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self._act_on_selection(request, queryset, VERBS["retry"])

    @admin.action(description="Stop the selected jobs…", permissions=["stop"])
    def stop_jobs(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        return self._act_on_selection(request, queryset, VERBS["stop"])

    @admin.action(description="Dead-letter the selected jobs…", permissions=["dead_letter"])
    def dead_letter_jobs(
        self, request: HttpRequest, queryset: QuerySet[Any]
    ) -> HttpResponse | None:
        return self._act_on_selection(request, queryset, VERBS["dead-letter"])


@admin.register(Job)
class JobAdmin(_JobAdminBase):
    list_display = (
        "job_id",
        "name",
        "queue",
        "status_badge",
        "attempts_column",
        "run_at",
        "age",
        "duration",
        "error",
        "progress_column",
    )
    list_display_links = ("job_id", "name")
    list_filter = ("status", QueueFilter, NameFilter, ("created_at", admin.DateFieldListFilter))
    actions = ("retry_jobs", "stop_jobs", "dead_letter_jobs")
    verbs = ("retry", "stop", "dead-letter")


@admin.register(DeadLetter)
class DeadLetterAdmin(_JobAdminBase):
    """Dead jobs, grouped by job name and error, to requeue a whole failure at once."""

    list_display = ("job_id", "name", "queue", "error", "attempts_column", "finished_at", "age")
    list_display_links = ("job_id", "name")
    list_filter = (QueueFilter, NameFilter, ("finished_at", admin.DateFieldListFilter))
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
                    "error": _first_line(group["last_error"], 200) or "(no error recorded)",
                    "list_url": self._url("changelist", query=query),
                    "retry_url": self._url("bulk", "retry", query=query) if may_retry else None,
                }
            )
        return rows


# -- pauses ---------------------------------------------------------------------------------------


@admin.register(Pause)
class PauseAdmin(admin.ModelAdmin):
    """Paused queues and job names: add one to hold matching jobs, delete it to let them run."""

    fields = ("kind", "value", "reason")
    list_display = ("kind", "value", "reason", "created_at")
    list_filter = ("kind",)
    search_fields = ("value", "reason")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a pause is added or lifted, not edited

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name == "value":
            known = sorted(known_queue_names(request) | known_job_names(request))
            field.widget.attrs["list"] = "django-jobs-pausable"
            field.help_text = format_html(
                'A queue, or a job name.<datalist id="django-jobs-pausable">{}</datalist>',
                format_html_join("", '<option value="{}">', ((v,) for v in known)),
            )
        return field

    def save_model(self, request: HttpRequest, obj: Pause, form: Any, change: bool) -> None:
        # Through the manager, which tells every worker at once (NOTIFY) rather than at its next
        # re-read of the pauses.
        pause = Pause.objects.pause(obj.kind, obj.value, obj.reason)
        obj.pk, obj.created_at = pause.pk, pause.created_at

    def delete_model(self, request: HttpRequest, obj: Pause) -> None:
        Pause.objects.resume(obj.kind, obj.value)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for pause in queryset:
            Pause.objects.resume(pause.kind, pause.value)
