"""System checks for ``DJANGO_JOBS``. IDs are documented in docs/reference/checks.md."""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import connections

from .conf import DEFAULTS

_NUMBER_MIN: dict[str, float] = {
    "DEFAULT_MAX_ATTEMPTS": 1,
    "BACKOFF_BASE": 0,
    "BACKOFF_FACTOR": 1,
    "BACKOFF_MAX": 0,
    "MAX_PAYLOAD_BYTES": 1,
    "POLL_INTERVAL": 0.01,
    "RECONNECT_BACKOFF": 0.01,
}


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    value = getattr(settings, "DJANGO_JOBS", {})
    if not isinstance(value, dict):
        return [
            Error(
                f"DJANGO_JOBS must be a dict, not {type(value).__name__}.",
                hint='Write DJANGO_JOBS = {"DEFAULT_QUEUE": "default", ...} in your settings.',
                id="django_jobs.E001",
            )
        ]
    errors: list[Any] = []
    for key in value:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(key, DEFAULTS, n=1)
            errors.append(
                Error(
                    f"DJANGO_JOBS has an unknown key {key!r}.",
                    hint=f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(DEFAULTS)}.",
                    id="django_jobs.E002",
                )
            )
    for key, minimum in _NUMBER_MIN.items():
        if key in value:
            v = value[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum:
                errors.append(
                    Error(
                        f"DJANGO_JOBS[{key!r}] is {v!r}; it must be a number >= {minimum:g}.",
                        hint=f"The default is {DEFAULTS[key]!r}.",
                        id="django_jobs.E003",
                    )
                )
    if "BACKOFF_JITTER" in value:
        v = value["BACKOFF_JITTER"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
            errors.append(
                Error(
                    f"DJANGO_JOBS['BACKOFF_JITTER'] is {v!r}; it must be between 0 and 1.",
                    hint="0.1 spreads retries by ±10%.",
                    id="django_jobs.E003",
                )
            )
    for key in ("DEFAULT_TIMEOUT",):
        if key in value and value[key] is not None:
            v = value[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                errors.append(
                    Error(
                        f"DJANGO_JOBS[{key!r}] is {v!r}; it must be positive seconds or None.",
                        hint="None means no limit.",
                        id="django_jobs.E003",
                    )
                )
    if "CONCURRENCY" in value and value["CONCURRENCY"] is not None:
        v = value["CONCURRENCY"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            errors.append(
                Error(
                    f"DJANGO_JOBS['CONCURRENCY'] is {v!r}; it must be a whole number >= 1 or None.",
                    hint="None means one child process per CPU.",
                    id="django_jobs.E003",
                )
            )
    for key in ("DEFAULT_QUEUE",):
        if key in value and not (isinstance(value[key], str) and value[key]):
            errors.append(
                Error(f"DJANGO_JOBS[{key!r}] must be a non-empty string.", id="django_jobs.E003")
            )
    if "LISTEN_NOTIFY" in value and not isinstance(value["LISTEN_NOTIFY"], bool):
        errors.append(Error("DJANGO_JOBS['LISTEN_NOTIFY'] must be True or False.", id="django_jobs.E003"))
    alias = value.get("DATABASE", DEFAULTS["DATABASE"])
    if alias not in settings.DATABASES:
        errors.append(
            Error(
                f"DJANGO_JOBS['DATABASE'] is {alias!r}, which is not in DATABASES.",
                hint=f"Use one of: {', '.join(settings.DATABASES)}.",
                id="django_jobs.E004",
            )
        )
    else:
        vendor = connections[alias].vendor
        if vendor == "sqlite":
            errors.append(
                Warning(
                    "django-jobs is using SQLite: fine for local development with one worker, "
                    "but SQLite has no SKIP LOCKED and no LISTEN/NOTIFY.",
                    hint="Use PostgreSQL in production.",
                    id="django_jobs.W001",
                )
            )
        elif vendor != "postgresql":
            errors.append(
                Error(
                    f"django-jobs supports PostgreSQL (and SQLite for development), not {vendor}.",
                    hint="Point DJANGO_JOBS['DATABASE'] at a PostgreSQL database.",
                    id="django_jobs.E005",
                )
            )
    return errors


@register(Tags.compatibility)
def check_schedules(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Check the scheduling settings and every schedule declared in code (E101-E105)."""
    from .exceptions import InvalidCron, InvalidJobArguments, InvalidPayload, InvalidSchedule, JobNotRegistered
    from .registry import registry
    from .scheduler import parse_declaration

    value = getattr(settings, "DJANGO_JOBS", {})
    if not isinstance(value, dict):
        return []  # E001 says so
    errors: list[Any] = []
    grace = value.get("SCHEDULE_MISFIRE_GRACE", 0)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        errors.append(Error(
            f"DJANGO_JOBS['SCHEDULE_MISFIRE_GRACE'] is {grace!r}; it must be seconds >= 0.",
            hint="A tick later than this counts as missed; the default is 60.",
            id="django_jobs.E101",
        ))
    cap = value.get("SCHEDULE_CATCH_UP_MAX", 1)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        errors.append(Error(
            f"DJANGO_JOBS['SCHEDULE_CATCH_UP_MAX'] is {cap!r}; it must be a whole number >= 1.",
            hint='The most jobs one catch-up enqueues for a catch_up="all" schedule; the default is 100.',
            id="django_jobs.E101",
        ))
    schedules = value.get("SCHEDULES", {})
    if not isinstance(schedules, dict):
        return errors + [Error(
            f"DJANGO_JOBS['SCHEDULES'] must be a dict of name -> schedule, not {type(schedules).__name__}.",
            hint='{"nightly-report": {"job": "shop.jobs.report", "cron": "5 0 * * *"}}',
            id="django_jobs.E102",
        )]
    for name, spec in schedules.items():
        try:
            parse_declaration(name, spec)
        except InvalidCron as exc:
            errors.append(Error(str(exc), hint="Write five fields: minute hour day-of-month month "
                                "day-of-week, and an IANA timezone name.", id="django_jobs.E103"))
        except InvalidSchedule as exc:
            errors.append(Error(str(exc), hint="See docs/reference/schedules.md for the keys.",
                                id="django_jobs.E102"))
        except (JobNotRegistered, InvalidJobArguments, InvalidPayload) as exc:
            errors.append(Error(f"DJANGO_JOBS['SCHEDULES'][{name!r}]: {exc}",
                                hint="Name a registered job and give arguments its signature accepts.",
                                id="django_jobs.E104"))
    for definition in registry:
        if definition.cron and definition.name in schedules:
            errors.append(Error(
                f"The schedule {definition.name!r} is declared twice: by @job(cron=…) and in "
                f"DJANGO_JOBS['SCHEDULES'].",
                hint="Remove cron= from @job, or give the SCHEDULES entry another name.",
                id="django_jobs.E105",
            ))
    return errors
