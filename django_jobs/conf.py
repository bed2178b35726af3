"""Settings: one ``DJANGO_JOBS`` dict, read at attribute access so ``override_settings`` works."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed

# Every key, its default and a one-line description. checks.py validates user values against this.
DEFAULTS: dict[str, Any] = {
    # Database alias the job tables live in.
    "DATABASE": "default",
    # Queue a job goes to when neither @job nor using() names one.
    "DEFAULT_QUEUE": "default",
    # Attempts before a failing job goes dead, when @job doesn't say.
    "DEFAULT_MAX_ATTEMPTS": 3,
    # Seconds an attempt may run before it is killed, when @job doesn't say. None: no limit.
    "DEFAULT_TIMEOUT": None,
    # Exponential backoff between failed attempts: see retry.py for the formula.
    "BACKOFF_BASE": 5.0,
    "BACKOFF_FACTOR": 2.0,
    "BACKOFF_MAX": 3600.0,
    "BACKOFF_JITTER": 0.1,
    # Largest JSON payload (args + kwargs) accepted at enqueue time, in bytes.
    "MAX_PAYLOAD_BYTES": 256 * 1024,
    # Seconds an idle worker waits before looking for jobs when no notification woke it.
    "POLL_INTERVAL": 1.0,
    # Wake idle workers with LISTEN/NOTIFY on PostgreSQL. Turn off behind PgBouncer in
    # transaction mode, where LISTEN doesn't work; workers then rely on POLL_INTERVAL alone.
    "LISTEN_NOTIFY": True,
    # Prepare the hot statements (claim, enqueue, outcomes) once per connection. Turn off behind
    # PgBouncer older than 1.21 in transaction mode, which can't route prepared statements.
    "PREPARE_STATEMENTS": True,
    # Child processes per worker when --concurrency isn't given. None: one per CPU.
    "CONCURRENCY": None,
    # Seconds a worker waits before reconnecting after losing the database (doubles up to 30).
    "RECONNECT_BACKOFF": 0.5,
    # Seconds between a worker's heartbeats (written by a thread a busy job can't starve).
    "HEARTBEAT_INTERVAL": 5.0,
    # Seconds without a heartbeat after which a worker counts as lost and its jobs are rescued.
    "RESCUE_AFTER": 60.0,
    # Seconds a queued job whose name no live worker registers waits for one (a rolling deploy
    # whose new workers aren't up yet) before it ends dead with JobNotRegistered.
    "UNKNOWN_JOB_GRACE": 600.0,
    # Times a job may be lost (its worker or child process died while it may have been running)
    # before it ends dead as a poison pill, whatever attempts it has left. None: no limit.
    "MAX_LOST": 3,
    # Seconds a running job gets to return after a stop request before its process is killed.
    "STOP_GRACE": 10.0,
    # How long finished jobs are kept, in seconds per outcome; None keeps them forever.
    "RETENTION": {"succeeded": 7 * 86400, "stopped": 30 * 86400, "dead": 30 * 86400},
    # Rows deleted per pruning statement, and seconds between a worker's pruning runs.
    "PRUNE_BATCH": 1000,
    "PRUNE_INTERVAL": 300.0,
    # How long the admin's charts keep their buckets (services/tally.py records them), in seconds
    # or a timedelta: minute buckets (the hour and day views), hourly ones (the week view).
    "CHARTS_MINUTE_RETENTION": 48 * 3600,
    "CHARTS_HOUR_RETENTION": 90 * 86400,
    # Cron schedules declared in code, synced into the schedule table when workers start:
    # {"nightly-report": {"job": "shop.jobs.report", "cron": "5 0 * * *", ...}}. See
    # docs/reference/schedules.md for the keys.
    "SCHEDULES": {},
    # Seconds after its time a schedule tick still counts as on time rather than missed.
    "SCHEDULE_MISFIRE_GRACE": 60.0,
    # Most jobs one catch-up enqueues for a schedule with catch_up="all" (the latest ticks win).
    "SCHEDULE_CATCH_UP_MAX": 100,
    # Seconds after a tick by which a job of the schedule must have succeeded, or the schedule is
    # flagged as missed (admin, overview, metrics, mail); a schedule's own grace replaces it.
    "SCHEDULE_GRACE": 3600.0,
    # The bearer token that lets Prometheus read the metrics endpoint (django_jobs.urls). Read it
    # from the environment in your settings; None: only logged-in staff can read the metrics.
    "METRICS_TOKEN": None,
    # Email ADMINS (mail_admins) when a job goes dead, at most once per job name per
    # MAIL_ADMINS_INTERVAL seconds; the next mail says how many more died meanwhile.
    "MAIL_ADMINS_ON_DEAD": False,
    "MAIL_ADMINS_INTERVAL": 3600.0,
    # Email ADMINS when a schedule is missed, at most once per schedule per MAIL_ADMINS_INTERVAL
    # while it stays missed. None: the same as MAIL_ADMINS_ON_DEAD.
    "MAIL_ADMINS_ON_MISSED": None,
    # Scheme and host the admin is served from ("https://ops.example.com"): links in mails (the
    # dead-job mail) are this plus the admin's path. None: the links are paths only.
    "ADMIN_BASE_URL": None,
    # Limits per queue, held across every worker: {"partner-api": {"concurrency": 4, "rate": "100/m"}}.
    # An operator's limit set in the admin replaces these. See docs/how-to/limits.md.
    "QUEUES": {},
    # Modules every process imports at startup, after the jobs.py (and tasks.py) modules of the
    # installed apps, like Celery's "imports": ["shop.billing.tasks"]. Jobs and tasks defined
    # elsewhere must be in a module listed here, or workers never register them.
    "IMPORTS": [],
}


class JobsSettings:
    """Attribute access to ``settings.DJANGO_JOBS`` merged over ``DEFAULTS``.

    Values are cached after the first read (enqueue() reads several per call) as attributes of
    the instance, so a later read is a plain attribute look-up that never reaches __getattr__
    (which cost ~1.3 µs a read). The cache is dropped whenever Django reports a change of
    ``DJANGO_JOBS`` (``override_settings``, the pytest-django ``settings`` fixture), so overrides
    still take effect at once.
    """

    def user_settings(self) -> dict[str, Any]:
        value = getattr(django_settings, "DJANGO_JOBS", None)
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        # Only reached for a setting not read since the last reload().
        if name not in DEFAULTS:
            raise AttributeError(f"DJANGO_JOBS has no setting {name!r}")
        value = self.__dict__[name] = self.user_settings().get(name, DEFAULTS[name])
        return value

    def reload(self) -> None:
        """Forget cached values (called when DJANGO_JOBS changes)."""
        self.__dict__.clear()


jobs_settings = JobsSettings()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "DJANGO_JOBS":
        jobs_settings.reload()


setting_changed.connect(_on_setting_changed)
