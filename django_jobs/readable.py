"""Durations, moments and one-line errors for people: what the admin's pages and ``manage.py jobs``
both show."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .conf import jobs_settings


def format_age(age: timedelta | None) -> str:
    """A duration an operator reads at a glance: "45 s", "3 min 20 s", "2 h 5 min", "3 d 4 h"."""
    if age is None:
        return "—"
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_duration(delta: timedelta | None) -> str:
    """A job's duration or age at a glance: "850 ms", "12.5 s", "3 min 20 s", "2 h 5 min"."""
    if delta is None:
        return "—"
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    return format_age(delta)


def first_line(text: str, limit: int = 100) -> str:
    """Return the first line of ``text``, cut to ``limit`` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def moment(value: Any) -> str:
    """A stored timestamp (datetime or ISO text from a history entry) on the site's clock."""
    when = parse_datetime(value) if isinstance(value, str) else value
    if not isinstance(when, datetime):
        return str(value or "—")
    return timezone.localtime(when).strftime("%Y-%m-%d %H:%M:%S")


def short_moment(when: datetime | None) -> str:
    """A moment for a narrow column, on the site's clock: "14:05:09" today, else "Dec 6 14:05"."""
    if when is None:
        return "—"
    local = timezone.localtime(when)
    if local.date() == timezone.localdate():
        return local.strftime("%H:%M:%S")
    return f"{local:%b} {local.day} {local:%H:%M}"


def run_time(
    started_at: datetime | None, finished_at: datetime | None, *, running: bool, now: datetime
) -> str:
    """How long a job ran ("1.2 s") or has run so far ("3 min so far"); "—" if it never started
    (or its times disagree: a clock jump between hosts)."""
    if started_at is None:
        return "—"
    if running:
        return f"{format_duration(now - started_at)} so far"
    if finished_at is None or finished_at < started_at:
        return "—"
    return format_duration(finished_at - started_at)


def admin_url(name: str, *args: Any) -> str | None:
    """The admin page's absolute URL (``ADMIN_BASE_URL`` + its path), for mails; its path alone
    without the setting, and None while that admin page isn't registered."""
    try:
        path = reverse(name, args=args)
    except NoReverseMatch:
        return None
    base = jobs_settings.ADMIN_BASE_URL
    return f"{str(base).rstrip('/')}{path}" if base else path
