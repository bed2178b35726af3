"""The pauses' page: add one to hold a queue's or a job name's jobs, delete it to let them run."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from ..models import Pause
from .filters import known_job_names, known_queue_names, offer_values


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
            known = known_queue_names(request) | known_job_names(request)
            offer_values(field, "django-jobs-pausable", known, "A queue, or a job name.")
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
