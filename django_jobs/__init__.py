"""Background and cron jobs for Django on the database you already have."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

__all__ = [
    "Backoff",
    "Retry",
    "StopJob",
    "current_job",
    "enqueue",
    "enqueue_many",
    "job",
]

if TYPE_CHECKING:
    from .context import current_job
    from .enqueueing import enqueue, enqueue_many
    from .exceptions import Retry, StopJob
    from .registry import job
    from .retry import Backoff

_LAZY = {
    "job": "registry",
    "enqueue": "enqueueing",
    "enqueue_many": "enqueueing",
    "current_job": "context",
    "Retry": "exceptions",
    "StopJob": "exceptions",
    "Backoff": "retry",
}


def __getattr__(name: str) -> Any:
    # Lazy so that importing django_jobs (e.g. from settings) doesn't import models early.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'django_jobs' has no attribute {name!r}")
