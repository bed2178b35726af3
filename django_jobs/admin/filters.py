"""The job lists' queue, name and flow-control filters, and the known values they and the pause
and limit forms offer."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from .. import stats
from ..models import KEYED, PARKED, READY_STATUSES, UNGATED, UNPARKED, Job, Pause, Schedule, Worker
from ..registry import registry

#: Rows of recent and ready jobs sampled for the queue and name filters' choices.
FILTER_SAMPLE = 1000


#: The ready jobs, split as the partial indexes on them are (models.Job.Meta.indexes): each read
#: repeats one index's predicate, so that it walks that index. ``status IN (queued, retrying)``
#: alone implies none of them (the claim's index also leaves out keyed and parked rows), and the
#: planner would read the whole table, finished rows and all, to find the few ready ones.
READY_BY_INDEX = (
    Q(status__in=READY_STATUSES) & UNGATED & UNPARKED,  # django_jobs_ready_idx
    Q(status__in=READY_STATUSES) & KEYED,  # django_jobs_keyed_idx
    Q(status__in=READY_STATUSES, sequence_key__isnull=False),  # django_jobs_sequence_idx
    Q(status__in=READY_STATUSES) & PARKED,  # django_jobs_parked_idx
)


def _sample(request: HttpRequest, field_name: str) -> set[str]:
    """Values of ``field_name`` among the newest and the ready jobs: bounded index reads, however
    many rows the table holds (a DISTINCT over the table would read every row)."""
    cache = getattr(request, "_django_jobs_sample", None)
    if cache is None:
        newest = Job.objects.order_by("-id").values_list("queue", "name")[:FILTER_SAMPLE]
        rows = list(newest)
        for ready in READY_BY_INDEX:
            rows += Job.objects.filter(ready).order_by().values_list("queue", "name")[:FILTER_SAMPLE]
        cache = {"queue": {q for q, _ in rows}, "name": {n for _, n in rows}}
        request._django_jobs_sample = cache  # type: ignore[attr-defined]
    return cache[field_name]


def known_queue_names(request: HttpRequest) -> set[str]:
    """Queues worth offering: configured, registered, served, paused or scheduled, and sampled."""
    queues = stats.known_queues()
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


def offer_values(field: Any, list_id: str, values: set[str], help_text: str) -> Any:
    """Let a text form field suggest ``values`` as its user types (an HTML datalist), which
    still takes any other value typed in."""
    field.widget.attrs["list"] = list_id
    field.help_text = format_html(
        '{}<datalist id="{}">{}</datalist>',
        help_text,
        list_id,
        format_html_join("", '<option value="{}">', ((v,) for v in sorted(values))),
    )
    return field


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



#: The flow-control filter's choices: (label, lookups).
FLOW_CHOICES: dict[str, tuple[str, dict[str, bool]]] = {
    "concurrency": ("Has a concurrency key", {"concurrency_key__isnull": False}),
    "rate": ("Has a rate key", {"rate_key__isnull": False}),
    "sequence": ("Has a sequence key", {"sequence_key__isnull": False}),
    "none": (
        "No key",
        {"concurrency_key__isnull": True, "rate_key__isnull": True, "sequence_key__isnull": True},
    ),
}


class FlowKeyFilter(admin.SimpleListFilter):
    """Jobs enqueued with a flow-control key: limited per key, or in a sequence.

    One key's jobs are ``?sequence_key=customer:42`` (a job's page links there).
    """

    title = "flow control"
    parameter_name = "flow"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, label) for value, (label, _) in FLOW_CHOICES.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        choice = FLOW_CHOICES.get(self.value() or "")
        return queryset.filter(**choice[1]) if choice else queryset
