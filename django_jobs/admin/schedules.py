"""The schedules' pages: the list, and the form that previews a cron and says what is wrong."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import ngettext

from .. import audit, cron, stats, timeline
from ..conf import jobs_settings
from ..exceptions import InvalidCron
from ..models import Job, Schedule, ScheduleQuerySet
from ..registry import registry
from ..scheduler import describe_error
from .charts import render_charts

#: The fields a schedule declared in code takes from the code; the admin shows them read-only.
CODE_OWNED_FIELDS = (
    "name", "job_name", "args", "kwargs", "cron", "timezone", "queue", "priority", "catch_up"
)
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


def missed(schedule: Schedule, now: datetime | None = None) -> str:
    """What the page says when ``schedule`` missed a run (see Schedule.missed_tick), else ""."""
    now = now or timezone.now()
    latest = getattr(schedule, "latest_success", schedule.last_success_at)
    tick = schedule.missed_tick(now, latest)
    return stats.missed_message(schedule, tick, latest, now) if tick is not None else ""


def schedule_problems(schedule: Schedule) -> list[str]:
    """Why ``schedule`` doesn't fire as it should, for its page: an unknown job, a failed tick,
    a missed run."""
    problems = []
    if schedule.job_name not in registry:
        problems.append(stats.unregistered_message(schedule))
    if schedule.last_error:
        problems.append(f"Its last due tick enqueued nothing: {schedule.last_error}")
    if message := missed(schedule):
        problems.append(message)
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
        fields = [
            "name", "job_name", "args", "kwargs", "cron", "timezone", "catch_up", "enabled", "queue", "priority",
            "grace",
        ]
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


class ScheduleAdmin(admin.ModelAdmin):
    """Cron schedules to edit, preview, run now, enable or disable; code-owned rows read-only."""

    form = ScheduleForm
    list_display = ("name", "rhythm", "timezone", "next_run", "last_run", "last_success", "enabled", "source")
    list_filter = ("enabled", "source", "catch_up")
    search_fields = ("name", "job_name")
    list_select_related = ("last_job",)
    actions = ("run_now", "enable", "disable")
    readonly_fields = (
        "attention", "next_run", "last_run", "last_success", "last_error", "source", "created_at", "updated_at",
        "activity",
    )
    fieldsets = (
        (None, {"fields": ("name", "job_name", "args", "kwargs")}),
        ("When", {"fields": ("cron", "timezone", "preview", "catch_up", "enabled")}),
        ("Overrides", {"fields": ("queue", "priority"), "classes": ("collapse",)}),
        ("Missed-run alert", {"fields": ("grace",)}),
        ("State", {"fields": (
            "next_run", "last_run", "last_success", "last_error", "source", "created_at", "updated_at"
        )}),
        ("Activity", {"fields": ("activity",)}),
    )

    def get_queryset(self, request: HttpRequest) -> Any:
        # latest_success: the stored last success or a later one still in the job table.
        queryset = super().get_queryset(request)
        assert isinstance(queryset, ScheduleQuerySet)
        return queryset.with_last_success()

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

    @admin.display(description="Runs of its job")
    def activity(self, obj: Schedule | None) -> str:
        """The charts of the job's runs, failures and durations: the last day and the last week."""
        if obj is None or not obj.pk:
            return "—"
        now = timezone.now()
        return render_charts([
            (view.label, timeline.name_charts(jobs_settings.DATABASE, view, obj.job_name, now=now,
                                              slug=f"dj-chart-{view.key}"))
            for view in (timeline.VIEWS["day"], timeline.VIEWS["week"])
        ])

    @admin.display(description="Last success", ordering="last_success_at")
    def last_success(self, obj: Schedule) -> str:
        latest = getattr(obj, "latest_success", obj.last_success_at)
        text = _local(latest, obj.timezone) if latest else "never"
        if missed(obj):
            return format_html('{}<br><span class="errornote dj-missed">Missed</span>', text)
        return text

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
            audit.log_objects(request.user, [schedule], audit.CHANGE, f"Ran now: enqueued job #{job.pk}.")
            enqueued.append(f"{schedule.name} (job #{job.pk})")
        if enqueued:
            message = ngettext(
                "Enqueued %(count)d job: %(jobs)s.", "Enqueued %(count)d jobs: %(jobs)s.", len(enqueued)
            ) % {"count": len(enqueued), "jobs": ", ".join(enqueued)}
            self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Enable (from the next tick; missed ticks are not replayed)", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: ScheduleQuerySet) -> None:
        changed = [s for s in queryset.filter(enabled=False) if s.enable()]
        audit.log_objects(request.user, changed, audit.CHANGE, "Enabled.")
        self._report_toggle(
            request, queryset, len(changed),
            ("Enabled %(count)d schedule.", "Enabled %(count)d schedules."),
            ("%(count)d was already enabled.", "%(count)d were already enabled."),
        )

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: ScheduleQuerySet) -> None:
        changed = [s for s in queryset.filter(enabled=True) if s.disable()]
        audit.log_objects(request.user, changed, audit.CHANGE, "Disabled.")
        self._report_toggle(
            request, queryset, len(changed),
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
