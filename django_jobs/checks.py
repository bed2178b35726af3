"""System checks for ``DJANGO_JOBS``. IDs are documented in docs/reference/checks.md."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import connections

from .conf import DEFAULTS, jobs_settings
from .exceptions import (
    InvalidCron,
    InvalidJobArguments,
    InvalidJobOptions,
    InvalidPayload,
    InvalidSchedule,
    JobNotRegistered,
)
from .flow import RATE_FORMS, check_concurrency, parse_rate
from .models import FINISHED_STATUSES, MAX_SCHEDULE_GRACE, Schedule
from .registry import queue_problem, registry
from .scheduler import parse_declaration
from .stats import unregistered_message
from .worker.pool import MAX_CONCURRENCY

_NUMBER_MIN: dict[str, float] = {
    "DEFAULT_MAX_ATTEMPTS": 1,
    "BACKOFF_BASE": 0,
    "BACKOFF_FACTOR": 1,
    "BACKOFF_MAX": 0,
    "MAX_PAYLOAD_BYTES": 1,
    "POLL_INTERVAL": 0.01,
    "RECONNECT_BACKOFF": 0.01,
    "HEARTBEAT_INTERVAL": 0.01,
    "RESCUE_AFTER": 0.01,
    "STOP_GRACE": 0,
    "UNKNOWN_JOB_GRACE": 0,
    "PRUNE_INTERVAL": 0.01,
    "MAIL_ADMINS_INTERVAL": 0,
}
# Whole numbers >= 1, and what None means where None is allowed.
_WHOLE: dict[str, str | None] = {
    "CONCURRENCY": "None means one child process per CPU.",
    "PRUNE_BATCH": None,
    "MAX_LOST": "None means a job lost again and again is retried while it has attempts left.",
}
_BOOLEANS = ("LISTEN_NOTIFY", "PREPARE_STATEMENTS", "MAIL_ADMINS_ON_DEAD")
# A worker that misses a heartbeat or two (a busy database, a pause) must not be taken for dead.
_RESCUE_HEARTBEATS = 3


def _is_number(v: Any) -> bool:
    # NaN is a float, but compares False with everything, so a range test alone lets it through.
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _check_retention(value: Any) -> list[Any]:
    statuses = [s.value for s in FINISHED_STATUSES]
    example = 'For example {"succeeded": 7 * 86400, "stopped": None, "dead": timedelta(days=30)}.'
    if value is None:
        return []
    if not isinstance(value, dict):
        return [Error(f"DJANGO_JOBS['RETENTION'] is {value!r}; it must be a dict or None.",
                      hint=example, id="django_jobs.E003")]
    errors: list[Any] = []
    for status, keep in value.items():
        if status not in statuses:
            errors.append(Error(f"DJANGO_JOBS['RETENTION'] has the key {status!r}; the keys are "
                                f"finished statuses: {', '.join(statuses)}.", id="django_jobs.E003"))
        elif not (keep is None or (_is_number(keep) and keep >= 0) or
                  (isinstance(keep, timedelta) and keep >= timedelta(0))):
            errors.append(Error(f"DJANGO_JOBS['RETENTION'][{status!r}] is {keep!r}; it must be "
                                f"seconds >= 0, a timedelta, or None.", hint=example, id="django_jobs.E003"))
    if errors:
        return errors
    left_out = [s for s in statuses if s not in value]
    if left_out and any(value.get(s) is not None for s in statuses):
        them = " and ".join(f"{s!r}" for s in left_out)
        errors.append(Warning(
            f"DJANGO_JOBS['RETENTION'] sets how long some finished jobs are kept but leaves out "
            f"{them}: those are kept forever, and their rows pile up.",
            hint=f"Give {them} a retention too, or None to keep them forever on purpose. The "
            f"defaults are 7 days for succeeded jobs and 30 for stopped and dead ones.",
            id="django_jobs.W004",
        ))
    return errors


#: The charts' retentions, and their defaults in words.
CHART_RETENTIONS = {"CHARTS_MINUTE_RETENTION": "48 hours", "CHARTS_HOUR_RETENTION": "90 days"}


def _at_least_an_hour(value: Any) -> bool:
    if isinstance(value, timedelta):
        return value >= timedelta(hours=1)
    return _is_number(value) and value >= 3600


def _settings_dict() -> dict[str, Any] | None:
    """``settings.DJANGO_JOBS`` when it is a dict (the only shape the other checks read)."""
    value = getattr(settings, "DJANGO_JOBS", {})
    return value if isinstance(value, dict) else None


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
            if not (_is_number(v) and v >= minimum):
                errors.append(
                    Error(
                        f"DJANGO_JOBS[{key!r}] is {v!r}; it must be a number >= {minimum:g}.",
                        hint=f"The default is {DEFAULTS[key]!r}.",
                        id="django_jobs.E003",
                    )
                )
    if "BACKOFF_JITTER" in value:
        v = value["BACKOFF_JITTER"]
        if not (_is_number(v) and 0 <= v <= 1):
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
            if not (_is_number(v) and v > 0):
                errors.append(
                    Error(
                        f"DJANGO_JOBS[{key!r}] is {v!r}; it must be positive seconds or None.",
                        hint="None means no limit.",
                        id="django_jobs.E003",
                    )
                )
    for key, none_means in _WHOLE.items():
        if key not in value or (value[key] is None and none_means):
            continue
        v = value[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            rule = "a whole number >= 1" + (" or None" if none_means else "")
            errors.append(
                Error(
                    f"DJANGO_JOBS[{key!r}] is {v!r}; it must be {rule}.",
                    hint=none_means or f"The default is {DEFAULTS[key]!r}.",
                    id="django_jobs.E003",
                )
            )
        elif key == "CONCURRENCY" and v > MAX_CONCURRENCY:
            errors.append(Error(
                f"DJANGO_JOBS['CONCURRENCY'] is {v!r}; a worker runs at most {MAX_CONCURRENCY} "
                f"child processes.",
                hint="For more, run more workers (each `manage.py runjobs` is one).",
                id="django_jobs.E003",
            ))
    for key in ("DEFAULT_QUEUE",):
        if key in value and not (isinstance(value[key], str) and value[key]):
            errors.append(
                Error(f"DJANGO_JOBS[{key!r}] must be a non-empty string.", id="django_jobs.E003")
            )
    for key in _BOOLEANS:
        if key in value and not isinstance(value[key], bool):
            errors.append(Error(f"DJANGO_JOBS[{key!r}] must be True or False.", id="django_jobs.E003"))
    if "RETENTION" in value:
        errors.extend(_check_retention(value["RETENTION"]))
    for key in CHART_RETENTIONS:
        if key in value and not _at_least_an_hour(value[key]):
            errors.append(Error(
                f"DJANGO_JOBS[{key!r}] is {value[key]!r}; it must be seconds >= 3600 or a "
                f"timedelta of at least an hour.",
                hint=f"The default is {DEFAULTS[key]!r} ({CHART_RETENTIONS[key]}).",
                id="django_jobs.E003",
            ))
    if "IMPORTS" in value:
        imports = value["IMPORTS"]
        if not (isinstance(imports, (list, tuple)) and all(isinstance(m, str) and m for m in imports)):
            errors.append(Error(
                f"DJANGO_JOBS['IMPORTS'] is {imports!r}; it must be a list of module paths.",
                hint='For example ["shop.billing.tasks"]: modules every process imports at startup.',
                id="django_jobs.E003",
            ))
    heartbeat = value.get("HEARTBEAT_INTERVAL", DEFAULTS["HEARTBEAT_INTERVAL"])
    rescue_after = value.get("RESCUE_AFTER", DEFAULTS["RESCUE_AFTER"])
    in_range = all(
        _is_number(v) and v >= _NUMBER_MIN[k]
        for k, v in (("HEARTBEAT_INTERVAL", heartbeat), ("RESCUE_AFTER", rescue_after))
    )
    if in_range and rescue_after < _RESCUE_HEARTBEATS * heartbeat:
        errors.append(
            Error(
                f"DJANGO_JOBS['RESCUE_AFTER'] is {rescue_after!r}, less than {_RESCUE_HEARTBEATS} "
                f"heartbeats of {heartbeat!r}s: a worker that is merely slow to beat would be taken "
                f"for dead, and its running jobs run a second time.",
                hint=f"Make RESCUE_AFTER at least {_RESCUE_HEARTBEATS} * HEARTBEAT_INTERVAL "
                f"({_RESCUE_HEARTBEATS * heartbeat:g}s); the defaults are 60 and 5.",
                id="django_jobs.E006",
            )
        )
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
            limited = sorted(d.name for d in registry if d.keyed)
            if limited or jobs_settings.QUEUES:
                what = ", ".join(limited[:3]) + ("…" if len(limited) > 3 else "") if limited else "QUEUES"
                errors.append(
                    Warning(
                        f"Flow control (concurrency, rate and sequence limits) needs PostgreSQL: on SQLite "
                        f"the limited jobs ({what}) wait and never run.",
                        hint="Use PostgreSQL, or remove the limits for local development.",
                        id="django_jobs.W302",
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
    value = _settings_dict()
    if value is None:
        return []  # E001 says so
    errors: list[Any] = []
    grace = value.get("SCHEDULE_MISFIRE_GRACE", 0)
    # `grace == grace` is False for NaN, which every range test lets through.
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not (grace == grace and grace >= 0):
        errors.append(Error(
            f"DJANGO_JOBS['SCHEDULE_MISFIRE_GRACE'] is {grace!r}; it must be seconds >= 0.",
            hint="A tick later than this counts as missed; the default is 60.",
            id="django_jobs.E101",
        ))
    watch = value.get("SCHEDULE_GRACE", 1)
    if not (_is_number(watch) and 0 < watch <= MAX_SCHEDULE_GRACE):
        errors.append(Error(
            f"DJANGO_JOBS['SCHEDULE_GRACE'] is {watch!r}; it must be seconds > 0 and at most "
            f"{MAX_SCHEDULE_GRACE:,} (10 years).",
            hint="How long after a tick a job of the schedule must have succeeded before the "
            "schedule is flagged as missed; the default is 3600. A schedule's own grace replaces it.",
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


@register(Tags.database)
def check_schedule_rows(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Any]:
    """Warn about enabled schedules whose job isn't registered: no worker ever fires them (W101).

    A database check: it runs with ``manage.py check --database default`` and before
    ``migrate``, not with every command.
    """
    value = _settings_dict()
    if value is None:
        return []  # E001 says so
    alias = value.get("DATABASE", DEFAULTS["DATABASE"])
    if not databases or alias not in databases or alias not in settings.DATABASES:
        return []
    connection = connections[alias]
    if Schedule._meta.db_table not in connection.introspection.table_names():
        return []  # not migrated yet
    rows = Schedule.objects.using(alias).filter(enabled=True).exclude(job_name__in=registry.names())
    return [
        Warning(
            f"The schedule {schedule.name!r} enqueues {schedule.job_name!r}. "
            f"{unregistered_message(schedule)}",
            hint="Register the job (a function decorated with @job in the jobs.py module of an "
            "installed app), or in the admin point the schedule at a registered job, or disable "
            "or delete it.",
            id="django_jobs.W101",
        )
        for schedule in rows.order_by("name")
    ]


#: A shorter METRICS_TOKEN can be guessed; secrets.token_urlsafe(32) gives 43 characters.
METRICS_TOKEN_MIN_LENGTH = 24


@register(Tags.compatibility)
def check_monitoring(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Check METRICS_TOKEN, MAIL_ADMINS_ON_MISSED, and that the admin mails have someone to mail
    and links to give (E003, W002, W003, W005)."""
    value = _settings_dict()
    if value is None:
        return []  # E001 says so
    errors: list[Any] = []
    token = value.get("METRICS_TOKEN")
    generate = 'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
    if token is not None and not (isinstance(token, str) and token.strip()):
        errors.append(Error(
            f"DJANGO_JOBS['METRICS_TOKEN'] is {token!r}; it must be a non-empty string or None.",
            hint="Read it from the environment, e.g. "
            "os.environ.get('DJANGO_JOBS_METRICS_TOKEN'). " + generate,
            id="django_jobs.E003",
        ))
    elif isinstance(token, str) and len(token.strip()) < METRICS_TOKEN_MIN_LENGTH:
        errors.append(Warning(
            f"DJANGO_JOBS['METRICS_TOKEN'] has {len(token.strip())} characters: "
            "short enough to guess.",
            hint=f"Use at least {METRICS_TOKEN_MIN_LENGTH} random characters. {generate}",
            id="django_jobs.W002",
        ))
    on_missed = value.get("MAIL_ADMINS_ON_MISSED")
    if not (on_missed is None or isinstance(on_missed, bool)):
        errors.append(Error(
            f"DJANGO_JOBS['MAIL_ADMINS_ON_MISSED'] is {on_missed!r}; it must be True, False or None.",
            hint="None (the default) mails about missed schedules when MAIL_ADMINS_ON_DEAD is on.",
            id="django_jobs.E003",
        ))
    mailing = [
        key for key, on in (
            ("MAIL_ADMINS_ON_DEAD", value.get("MAIL_ADMINS_ON_DEAD") is True),
            ("MAIL_ADMINS_ON_MISSED", on_missed is True),
        ) if on
    ]
    if mailing and not getattr(settings, "ADMINS", None):
        errors.append(Warning(
            f"DJANGO_JOBS[{mailing[0]!r}] is on, but ADMINS is empty: "
            "mail_admins() sends nothing.",
            hint='Set ADMINS (["ops@example.com"] on Django 6, [("Ops", "ops@example.com")] '
            "on 5.2) and an EMAIL_BACKEND that delivers.",
            id="django_jobs.W003",
        ))
    base_url = value.get("ADMIN_BASE_URL")
    if base_url is not None and not (
        isinstance(base_url, str) and urlsplit(base_url).scheme in ("http", "https") and urlsplit(base_url).netloc
    ):
        errors.append(Error(
            f"DJANGO_JOBS['ADMIN_BASE_URL'] is {base_url!r}; it must be a URL starting with "
            "https:// or http://, or None.",
            hint='The scheme and host the admin is served from, e.g. "https://ops.example.com".',
            id="django_jobs.E003",
        ))
    elif base_url is None and mailing:
        errors.append(Warning(
            f"DJANGO_JOBS[{mailing[0]!r}] is on, but ADMIN_BASE_URL isn't set: the mail's "
            "links to the admin are paths without a host, which mail clients can't open.",
            hint='Set DJANGO_JOBS["ADMIN_BASE_URL"] to the scheme and host the admin is served '
            'from, e.g. "https://ops.example.com".',
            id="django_jobs.W005",
        ))
    return errors


#: What an entry of DJANGO_JOBS["QUEUES"] may say.
QUEUE_OPTIONS = ("concurrency", "rate")
_QUEUES_EXAMPLE = '{"partner-api": {"concurrency": 4, "rate": "100/m"}}'
#: Each value's check, the hint for a value it refuses, and the check's ID.
_QUEUE_VALUES: tuple[tuple[str, Callable[[Any, str], Any], str, str], ...] = (
    ("concurrency", check_concurrency,
     "The most jobs of the queue running at once, over every worker: a whole number >= 1.", "django_jobs.E304"),
    ("rate", parse_rate,
     f"The most starts of the queue's jobs per period, over every worker: {RATE_FORMS}.", "django_jobs.E305"),
)


@register(Tags.compatibility)
def check_queues(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Check DJANGO_JOBS["QUEUES"]: queue name -> {"concurrency": N, "rate": "N/m"} (E301-E305, W301)."""
    value = _settings_dict()
    if value is None:
        return []  # E001 says so
    queues = value.get("QUEUES", {})
    if not isinstance(queues, dict):
        return [Error(
            f"DJANGO_JOBS['QUEUES'] must be a dict of queue name -> limits, not {type(queues).__name__}.",
            hint=f"For example {_QUEUES_EXAMPLE}.",
            id="django_jobs.E301",
        )]
    errors: list[Any] = []
    for queue, options in queues.items():
        where = f"DJANGO_JOBS['QUEUES'][{queue!r}]"
        problem = queue_problem(queue)
        if problem:
            errors.append(Error(
                f"DJANGO_JOBS['QUEUES'] names an invalid queue: {problem}.",
                hint="Use the queue's name as @job(queue=…) gives it.",
                id="django_jobs.E302",
            ))
        if not isinstance(options, dict):
            errors.append(Error(
                f"{where} is {options!r}; it must be a dict with a concurrency, a rate, or both.",
                hint=f"For example {_QUEUES_EXAMPLE}.",
                id="django_jobs.E301",
            ))
            continue
        errors.extend(_check_queue_options(where, options))
    return errors


def _check_queue_options(where: str, options: dict[Any, Any]) -> list[Any]:
    errors: list[Any] = []
    for key in options:
        if key not in QUEUE_OPTIONS:
            close = difflib.get_close_matches(str(key), QUEUE_OPTIONS, n=1)
            errors.append(Error(
                f"{where} has an unknown key {key!r}.",
                hint=f"Did you mean {close[0]!r}?" if close else "The keys are 'concurrency' and 'rate'.",
                id="django_jobs.E303",
            ))
    for key, validate, hint, check_id in _QUEUE_VALUES:
        if options.get(key) is not None:
            try:
                validate(options[key], f"{where}[{key!r}]")
            except InvalidJobOptions as exc:
                errors.append(Error(str(exc), hint=hint, id=check_id))
    concurrency, rate = options.get("concurrency"), options.get("rate")
    if concurrency is None and rate is None and not errors:
        errors.append(Warning(
            f"{where} limits nothing.",
            hint="Give it a concurrency, a rate, or both; or remove the entry.",
            id="django_jobs.W301",
        ))
    return errors
