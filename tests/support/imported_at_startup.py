"""A module only ``DJANGO_JOBS["IMPORTS"]`` imports (tests/unit/test_apps.py): its job registers then."""

from __future__ import annotations

from django_jobs import job


@job(name="tests.support.imported_at_startup.ping")
def ping() -> str:
    return "pong"
