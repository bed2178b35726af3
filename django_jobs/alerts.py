"""Email ADMINS when a job goes dead (``DJANGO_JOBS["MAIL_ADMINS_ON_DEAD"]``), rate-limited.

A failing cron job dies every few minutes; its operators need one mail, not hundreds. So at
most one mail goes out per job name per ``MAIL_ADMINS_INTERVAL`` seconds, and the next one says
how many more of that job died in between. The limit is kept in the database (``DeadJobMail``,
one row per job name, decided under its row lock), so every worker on every host shares it.

The receiver runs in the worker's main process, which must never wait on a mail server: the
decision takes one short transaction, and the mail is sent from a background thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone

from .conf import jobs_settings
from .log import log_event
from .models import DeadJobMail, Job, JobStatus
from .readable import admin_url
from .signals import job_finished

logger = logging.getLogger("django_jobs")


@dataclass(frozen=True)
class DeadMail:
    """A mail about a dead job, decided on but not yet sent."""

    subject: str
    body: str


def decide(using: str, *, name: str, now: datetime) -> tuple[bool, int, datetime | None]:
    """Whether a death of job ``name`` at ``now`` gets a mail, under the shared rate limit.

    Returns (mail, unmailed, last_mailed_at): ``unmailed`` counts the deaths since the last mail
    that got none, for the mail to mention. Deaths that get no mail are counted instead.
    """
    interval = timedelta(seconds=float(jobs_settings.MAIL_ADMINS_INTERVAL))
    with transaction.atomic(using=using):
        row, created = (
            DeadJobMail.objects.using(using)
            .select_for_update()
            .get_or_create(name=name, defaults={"mailed_at": now})
        )
        if created:
            return True, 0, None
        if now - row.mailed_at >= interval:
            unmailed, last = row.unmailed, row.mailed_at
            row.mailed_at, row.unmailed = now, 0
            row.save(update_fields=["mailed_at", "unmailed"])
            return True, unmailed, last
        row.unmailed += 1
        row.save(update_fields=["unmailed"])
        return False, row.unmailed, row.mailed_at


def compose(
    *,
    job_id: int,
    name: str,
    queue: str | None,
    attempt: int | None,
    error: dict[str, Any] | None,
    unmailed: int,
    last_mailed_at: datetime | None,
) -> DeadMail:
    """The mail about job ``job_id`` of ``name`` going dead."""
    error_line = (
        f"{error.get('class', '').rsplit('.', 1)[-1]}: {error.get('message', '')}" if error else ""
    )
    subject = f"Job {name} went dead (#{job_id})"
    if unmailed:
        subject += f", and {unmailed} more since the last mail"
    lines = [
        f"Job #{job_id} {name}{f' (queue {queue})' if queue else ''} went dead"
        f"{f' after attempt {attempt}' if attempt else ''}.",
        "",
    ]
    if error_line:
        lines += [f"Error: {error_line}", ""]
        if error and error.get("traceback"):
            lines += [str(error["traceback"]).rstrip(), ""]
    if unmailed and last_mailed_at:
        interval = float(jobs_settings.MAIL_ADMINS_INTERVAL)
        lines += [
            f"{unmailed} more {name} jobs went dead since the last mail about it "
            f"({last_mailed_at:%Y-%m-%d %H:%M %Z}); they were not mailed one by one "
            f"(DJANGO_JOBS['MAIL_ADMINS_INTERVAL'] is {interval:g} s).",
            "",
        ]
    job_url = admin_url("admin:django_jobs_job_change", job_id)
    dead_url = admin_url("admin:django_jobs_deadletter_changelist")
    if job_url:
        lines.append(f"The job in the admin: {job_url}")
    if dead_url:
        lines.append(f"Every dead job: {dead_url}")
    return DeadMail(subject, "\n".join(lines).rstrip() + "\n")


def _send(mail: DeadMail, job_id: int, name: str) -> None:
    try:
        mail_admins(mail.subject, mail.body, fail_silently=False)
    except Exception:  # noqa: BLE001 - a mail server's trouble must not end the worker
        logger.exception("django_jobs event=alert_mail_failed job=%s name=%s", job_id, name)
    else:
        log_event("alert_mailed", job=job_id, name=name)


#: Tests set this to False to send in the calling thread.
SEND_IN_BACKGROUND = True


def on_job_finished(
    sender: Any,
    job_id: int,
    name: str,
    status: str,
    attempt: int | None = None,
    error: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Mail ADMINS about a job that went dead, if MAIL_ADMINS_ON_DEAD and the rate limit allow."""
    if status != JobStatus.DEAD or not jobs_settings.MAIL_ADMINS_ON_DEAD:
        return
    using = jobs_settings.DATABASE
    try:
        mail, unmailed, last = decide(using, name=name, now=timezone.now())
        if not mail:
            log_event("alert_held", job=job_id, name=name, unmailed=unmailed)
            return
        queue = Job.objects.using(using).filter(pk=job_id).values_list("queue", flat=True).first()
        message = compose(
            job_id=job_id,
            name=name,
            queue=queue,
            attempt=attempt,
            error=error,
            unmailed=unmailed,
            last_mailed_at=last,
        )
    except Exception:  # noqa: BLE001 - e.g. the database went away: log it, keep the worker going
        logger.exception("django_jobs event=alert_failed job=%s name=%s", job_id, name)
        return
    if SEND_IN_BACKGROUND:
        threading.Thread(
            target=_send, args=(message, job_id, name), name="django-jobs-mail", daemon=True
        ).start()
    else:
        _send(message, job_id, name)


def connect() -> None:
    job_finished.connect(on_job_finished, dispatch_uid="django_jobs.alerts.dead")
