"""Dead-man alerts for schedules: record each schedule's last success, flag the missed ones, and
mail ADMINS about them once per ``MAIL_ADMINS_INTERVAL``.

A schedule is missed when its latest tick at least its grace ago has no succeeded job at or after
it (``Schedule.missed_tick``): a job that keeps failing, a paused queue, a worker that never
fires it, a job stuck running. The admin, the overview and the metrics compute the flag when
they show it; this service stores ``last_success_at`` (so pruning the job doesn't forget the
success) and sends the mail.

Every worker runs it, with no leader. Storing the last success is idempotent (it only moves
forward), and the mail is claimed by a compare-and-set on ``missed_mailed_at``: of two workers
checking at once, the second's UPDATE waits on the first's row lock, then finds the mail already
sent, so one mail goes out. The mail is sent from a background thread: a worker must never wait
on a mail server.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.core.mail import mail_admins
from django.db.models import Q

from ..conf import jobs_settings
from ..log import log_event
from ..models import Schedule
from ..readable import admin_url, format_age

if TYPE_CHECKING:
    from . import ServiceContext

logger = logging.getLogger("django_jobs")

#: Seconds between a worker's checks.
WATCH_INTERVAL = 30.0
#: Tests set this to False to send in the calling thread.
SEND_IN_BACKGROUND = True


@dataclass(frozen=True)
class Missed:
    """A schedule flagged as missed at ``now``: the tick it missed, and its last success."""

    schedule: Schedule
    tick: datetime
    last_success: datetime | None


def mail_on_missed() -> bool:
    """``MAIL_ADMINS_ON_MISSED``, or ``MAIL_ADMINS_ON_DEAD`` while it is None."""
    value = jobs_settings.MAIL_ADMINS_ON_MISSED
    return bool(jobs_settings.MAIL_ADMINS_ON_DEAD if value is None else value)


def missed_schedules(using: str, *, now: datetime) -> list[Missed]:
    """The enabled schedules missed at ``now``, by name: one query, an index probe each."""
    rows = Schedule.objects.using(using).filter(enabled=True).with_last_success().order_by("name")
    missed = []
    for schedule in rows:
        latest = getattr(schedule, "latest_success", None)
        tick = schedule.missed_tick(now, latest)
        if tick is not None:
            missed.append(Missed(schedule, tick, latest))
    return missed


def record_successes(using: str) -> int:
    """Store each schedule's latest success on its row, where pruning can't take it; return how
    many rows moved. Only ever forwards, so every worker may run it at once."""
    moved = 0
    for schedule in Schedule.objects.using(using).with_last_success():
        pk, latest = schedule.pk, getattr(schedule, "latest_success", None)
        if latest is None or latest == schedule.last_success_at:
            continue
        moved += (
            Schedule.objects.using(using)
            .filter(Q(last_success_at__isnull=True) | Q(last_success_at__lt=latest), pk=pk)
            .update(last_success_at=latest)
        )
    return moved


def claim_mail(using: str, schedule: Schedule, *, now: datetime) -> bool:
    """Whether this caller sends the mail about ``schedule`` now: at most one per schedule per
    ``MAIL_ADMINS_INTERVAL``, whoever asks (the row's update is the arbiter)."""
    interval = timedelta(seconds=float(jobs_settings.MAIL_ADMINS_INTERVAL))
    return bool(
        Schedule.objects.using(using)
        .filter(Q(missed_mailed_at__isnull=True) | Q(missed_mailed_at__lte=now - interval), pk=schedule.pk)
        .update(missed_mailed_at=now)
    )


def compose(missed: Missed, *, now: datetime) -> tuple[str, str]:
    """The mail's subject and body."""
    schedule = missed.schedule
    subject = f"Schedule {schedule.name} missed its run of {missed.tick:%Y-%m-%d %H:%M %Z}"
    since = (
        f"Its last success was {format_age(now - missed.last_success)} ago "
        f"({missed.last_success:%Y-%m-%d %H:%M %Z})."
        if missed.last_success
        else "No job of it has succeeded yet."
    )
    lines = [
        f"The schedule {schedule.name} ({schedule.job_name}, {schedule.cron!r} in "
        f"{schedule.timezone}) had no succeeded job within {format_age(schedule.effective_grace)} "
        f"of its tick at {missed.tick:%Y-%m-%d %H:%M %Z}.",
        since,
        "",
        "A failing job, a paused queue or job name, no worker running, or a job still running "
        "are the usual causes.",
        f"Another mail follows in {format_age(timedelta(seconds=float(jobs_settings.MAIL_ADMINS_INTERVAL)))} "
        "at the earliest, if it is still missed then (DJANGO_JOBS['MAIL_ADMINS_INTERVAL']).",
    ]
    url = admin_url("admin:django_jobs_schedule_change", schedule.pk)
    if url:
        lines += ["", f"The schedule in the admin: {url}"]
    return subject, "\n".join(lines) + "\n"


def _send(subject: str, body: str, name: str) -> None:
    try:
        mail_admins(subject, body, fail_silently=False)
    except Exception:  # noqa: BLE001 - a mail server's trouble must not end the worker
        logger.exception("django_jobs event=missed_mail_failed schedule=%s", name)
    else:
        log_event("missed_mailed", schedule=name)


def watch(using: str, *, now: datetime) -> list[Missed]:
    """Record successes, find the missed schedules, mail about those due a mail; return them."""
    record_successes(using)
    missed = missed_schedules(using, now=now)
    mailing = mail_on_missed()
    for item in missed:
        if not (mailing and claim_mail(using, item.schedule, now=now)):
            continue
        log_event("missed_alert", logging.WARNING, schedule=item.schedule.name, tick=item.tick.isoformat())
        subject, body = compose(item, now=now)
        if SEND_IN_BACKGROUND:
            threading.Thread(
                target=_send, args=(subject, body, item.schedule.name), name="django-jobs-mail", daemon=True
            ).start()
        else:
            _send(subject, body, item.schedule.name)
    return missed


class ScheduleWatch:
    """The worker service: every ``WATCH_INTERVAL`` seconds, run ``watch``."""

    name = "schedule-watch"

    def __init__(self, context: ServiceContext):
        self.using = context.using

    def run(self, now: datetime) -> float:
        watch(self.using, now=now)
        return WATCH_INTERVAL
