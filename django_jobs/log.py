"""Default logging receivers: one greppable ``key=value`` line per event."""

from __future__ import annotations

import logging
from typing import Any

from .signals import job_finished, job_started
from .text import storable

logger = logging.getLogger("django_jobs")


def _value(value: Any) -> str:
    text = storable(str(value)).replace("\n", " ")
    if not text or any(c in text for c in ' "='):
        text = '"' + text.replace('"', "'") + '"'
    return text


def format_event(event: str, **fields: Any) -> str:
    """``django_jobs event=failed job=123 name=x attempt=2`` (None values are left out)."""
    parts = [f"django_jobs event={event}"]
    parts.extend(f"{key}={_value(value)}" for key, value in fields.items() if value is not None)
    return " ".join(parts)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, format_event(event, **fields))


def _on_started(sender: Any, job_id: int, name: str, attempt: int, worker_id: str, **_: Any) -> None:
    if logger.isEnabledFor(logging.INFO):
        log_event("started", job=job_id, name=name, attempt=attempt, worker=worker_id)


def _on_finished(
    sender: Any,
    job_id: int,
    name: str,
    attempt: int,
    worker_id: str,
    outcome: str,
    status: str,
    duration: float,
    error: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    failed = outcome in ("failed", "timeout", "lost")
    if not logger.isEnabledFor(logging.WARNING if failed else logging.INFO):
        return
    error_text = f"{error['class'].rsplit('.', 1)[-1]}: {error['message']}" if error else None
    log_event(
        outcome,
        logging.WARNING if failed else logging.INFO,
        job=job_id,
        name=name,
        attempt=attempt,
        status=status,
        duration=f"{duration:.3f}s",
        worker=worker_id,
        error=error_text[:300] if error_text else None,
    )


def connect() -> None:
    job_started.connect(_on_started, dispatch_uid="django_jobs.log.started")
    job_finished.connect(_on_finished, dispatch_uid="django_jobs.log.finished")
