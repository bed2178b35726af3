from __future__ import annotations

from django.apps import AppConfig


class DjangoJobsConfig(AppConfig):
    name = "django_jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import alerts, checks, log  # noqa: F401 - checks register themselves on import
        from .registry import autodiscover

        log.connect()
        alerts.connect()
        autodiscover()
