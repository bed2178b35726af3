"""The limits' page: operators set, change and lift a concurrency or rate limit on a queue or a
job name, and see beside them the limits declared in code and in ``DJANGO_JOBS["QUEUES"]``.

An operator's limit replaces the declared value for the same target (a job keeps its key
template: a limit on a keyed job holds per key). Saving or deleting a row sends the control
NOTIFY, so every worker applies the change within a couple of seconds, without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from ..conf import jobs_settings
from ..exceptions import InvalidJobOptions
from ..flow import parse_rate
from ..models import Limit
from ..registry import JobDefinition, registry
from ..stats import template_text
from .filters import known_queue_names, offer_values

#: Who declared a limit, as the page says it.
SOURCES = {"code": "from code", "settings": "from settings"}
#: How soon every worker applies an operator's change (the control NOTIFY; the workers' re-read of
#: the limits when LISTEN/NOTIFY is off or missed).
APPLIES = "Every worker applies it within a couple of seconds."


@dataclass
class Declared:
    """A limit declared in code (``@job``) or in ``DJANGO_JOBS["QUEUES"]``, as the page lists it."""

    source: str  # "code" or "settings"
    kind: str  # Limit.Kind: "queue" or "name"
    value: str
    concurrency: str = ""
    rate: str = ""
    #: The job's key templates: its limits hold per key.
    concurrency_key: str = ""
    rate_key: str = ""
    sequence: str = ""
    #: The operator's values that replace the declared ones (empty: not replaced).
    concurrency_by_operator: str = ""
    rate_by_operator: str = ""

    @property
    def source_label(self) -> str:
        return SOURCES[self.source]

    @property
    def replaced(self) -> bool:
        return bool(self.concurrency_by_operator or self.rate_by_operator)


def _from_code(definition: JobDefinition) -> Declared | None:
    if definition.concurrency is None and definition.rate is None and definition.sequence_key is None:
        return None
    declared = Declared("code", Limit.Kind.NAME, definition.name)
    if definition.concurrency is not None:
        declared.concurrency = str(definition.concurrency)
        declared.concurrency_key = template_text(definition.concurrency_key) or ""
    if definition.rate is not None:
        declared.rate = str(definition.rate)
        declared.rate_key = template_text(definition.rate_key) or ""
    if definition.sequence_key is not None:
        after_dead = "goes on past" if definition.sequence_on_dead == "continue" else "waits on"
        declared.sequence = (
            f"one at a time, in order, per key {template_text(definition.sequence_key)} "
            f"(a dead job: the sequence {after_dead} it)"
        )
    return declared


def _queues_setting() -> dict[str, Any]:
    queues = jobs_settings.QUEUES
    # A malformed setting is the system checks' to report (E301…); the page shows what it can.
    return {q: o for q, o in queues.items() if isinstance(o, dict)} if isinstance(queues, dict) else {}


def _from_settings(queue: str, options: dict[str, Any]) -> Declared:
    concurrency, rate = options.get("concurrency"), options.get("rate")
    return Declared(
        "settings", Limit.Kind.QUEUE, queue,
        concurrency="" if concurrency is None else str(concurrency),
        rate=_rate_text(rate),
    )


def _rate_text(rate: Any) -> str:
    """A declared rate as "30/m", whichever form it was given in."""
    if rate is None or rate == "":
        return ""
    try:
        return str(parse_rate(rate))
    except InvalidJobOptions:
        return str(rate)  # E305 reports it


def declared_limits(operator: dict[tuple[str, str], Limit]) -> list[Declared]:
    """Every limit declared in settings and in code, each marked where ``operator`` replaces it."""
    rows = [_from_settings(q, o) for q, o in sorted(_queues_setting().items())]
    rows += sorted((d for d in map(_from_code, registry) if d is not None), key=lambda d: d.value)
    for row in rows:
        limit = operator.get((row.kind, row.value))
        if limit is not None:
            if row.concurrency and limit.concurrency is not None:
                row.concurrency_by_operator = str(limit.concurrency)
            if row.rate and limit.rate:
                row.rate_by_operator = limit.rate
    return rows


def _declared_for(kind: str, value: str) -> Declared | None:
    if kind == Limit.Kind.QUEUE:
        options = _queues_setting().get(value)
        return _from_settings(value, options) if options is not None else None
    definition = registry.get(value)
    return _from_code(definition) if definition is not None else None


_PERIODS = {1.0: "a second", 60.0: "a minute", 3600.0: "an hour", 86400.0: "a day"}


def _describe(concurrency: Any, rate: str, concurrency_key: str = "", rate_key: str = "") -> str:
    """A limit in words: "4 running at once and 100 starts a minute"."""
    parts = []
    if concurrency not in (None, ""):
        parts.append(f"{concurrency} running at once" + (f" per {concurrency_key}" if concurrency_key else ""))
    if rate:
        parts.append(_rate_words(rate) + (f" per {rate_key}" if rate_key else ""))
    return " and ".join(parts) or "no limit"


def _rate_words(rate: str) -> str:
    """A rate in words: "100/m" as "100 starts a minute"; another period, or unreadable text, as is."""
    try:
        parsed = parse_rate(rate)
    except InvalidJobOptions:
        return f"a rate of {rate}"
    period = _PERIODS.get(parsed.period)
    return f"{parsed.count} starts {period}" if period else f"a rate of {parsed}"


def _label(limit: Limit) -> str:
    return f"the queue {limit.value!r}" if limit.kind == Limit.Kind.QUEUE else f"the job {limit.value!r}"


class LimitAdmin(admin.ModelAdmin):
    """Operators' limits: add one to hold a queue or a job name to a concurrency or a rate,
    change it, delete it to go back to what code and settings declare."""

    list_display = ("kind", "value", "concurrency", "rate", "note", "changed_by", "updated_at")
    list_display_links = ("kind", "value")
    list_filter = ("kind",)
    search_fields = ("value", "note", "changed_by")
    ordering = ("kind", "value")
    change_list_template = "admin/django_jobs/limit/change_list.html"

    class Media:
        css = {"all": ["django_jobs/admin.css"]}

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["kind", "value", "concurrency", "rate", "note"]
        return [*fields, "changed_by", "updated_at"] if obj is not None else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("changed_by", "updated_at") if obj is not None else ()

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name == "value":
            known = known_queue_names(request) | set(registry.names())
            offer_values(field, "django-jobs-limitable", known, "A queue, or a registered job name.")
        return field

    def save_model(self, request: HttpRequest, obj: Limit, form: Any, change: bool) -> None:
        obj.changed_by = request.user.get_username()
        super().save_model(request, obj, form, change)  # Limit.save() tells every worker
        declared = _declared_for(obj.kind, obj.value) or Declared("", obj.kind, obj.value)
        replacing = " and ".join(p for p in (
            f"concurrency {declared.concurrency}" if declared.concurrency and obj.concurrency is not None else "",
            f"rate {declared.rate}" if declared.rate and obj.rate else "",
        ) if p)
        where = 'DJANGO_JOBS["QUEUES"]' if obj.kind == Limit.Kind.QUEUE else "@job"
        # A job keeps its key templates: an operator's limit on a keyed job holds per key.
        limit = _describe(obj.concurrency, obj.rate, declared.concurrency_key, declared.rate_key)
        self.message_user(
            request,
            f"{_label(obj).capitalize()} is now limited to {limit}"
            + (f", replacing {where}'s {replacing}" if replacing else "")
            + f". {APPLIES}",
            messages.SUCCESS,
        )

    def delete_model(self, request: HttpRequest, obj: Limit) -> None:
        super().delete_model(request, obj)  # Limit.delete() tells every worker
        self._lifted(request, [obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        # One row at a time through Limit.delete(), which sends the NOTIFY a bulk delete would not.
        limits = list(queryset)
        for limit in limits:
            limit.delete()
        self._lifted(request, limits)

    def _lifted(self, request: HttpRequest, limits: list[Limit]) -> None:
        for limit in limits:
            declared = _declared_for(limit.kind, limit.value)
            if declared is not None and (declared.concurrency or declared.rate):
                where = 'DJANGO_JOBS["QUEUES"]' if limit.kind == Limit.Kind.QUEUE else "@job"
                rule = _describe(declared.concurrency, declared.rate, declared.concurrency_key, declared.rate_key)
                back = f"back to {where}'s limit of {rule}"
            else:
                back = "back to no limit"
            self.message_user(
                request, f"Lifted the operators' limit on {_label(limit)}: {back}. {APPLIES}", messages.SUCCESS
            )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        operator = {(r.kind, r.value): r for r in Limit.objects.all()}
        context = {**(extra_context or {}), "declared_limits": declared_limits(operator)}
        return super().changelist_view(request, context)
