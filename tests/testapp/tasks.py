"""Tasks of Django's Tasks framework that the suite enqueues through django_jobs.backend.

Django 6 has ``django.tasks``; on Django 5.2 the django-tasks backport provides the same API.
"""

from __future__ import annotations

import asyncio
import inspect
import time

from django_jobs import StopJob
from django_jobs.backend import task_options
from django_jobs.retry import Backoff

from .jobs import _record

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task  # type: ignore[no-redef]

#: Whether ``@task(**options)`` passes options through to the backend's task class (Django 6.1+
#: and the backport); on Django 6.0 options go in ``@task_options`` only.
TASK_TAKES_OPTIONS = any(
    p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(task).parameters.values()
)

_FAST = Backoff(base=0.05, factor=1, max_delay=0.05, jitter=0)


@task
def add(a: int, b: int) -> int:
    _record("add-task")
    return a + b


@task(queue_name="emails", priority=10)
def send_email(to: str, subject: str = "") -> dict[str, str]:
    _record(to)
    return {"to": to, "subject": subject}


@task
def pair() -> tuple[int, int]:
    return (1, 2)


@task
async def async_double(n: int) -> int:
    await asyncio.sleep(0)
    return n * 2


@task(takes_context=True)
def with_context(context, label: str) -> dict[str, object]:  # noqa: ANN001 - Django's TaskContext
    _record(label)
    return {
        "attempt": context.attempt,
        "id": context.task_result.id,
        "queue": context.task_result.task.queue_name,
    }


@task
@task_options(max_attempts=2, backoff=_FAST)
def fail(label: str = "") -> None:
    _record(label)
    raise ValueError(f"task boom {label}")


@task
@task_options(max_attempts=3, dont_retry=(KeyError,))
def fail_fatally() -> None:
    _record()
    raise KeyError("missing")


@task
@task_options(timeout=0.5, max_attempts=1)
def sleep_forever() -> None:
    _record()
    time.sleep(3600)


@task
def stop_self(reason: str) -> None:
    _record()
    raise StopJob(reason)


@task
@task_options(unique_key="tests-singleton")
def singleton() -> str:
    return "only one at a time"


if TASK_TAKES_OPTIONS:

    @task(max_attempts=4, timeout=30, backoff=_FAST)
    def with_task_options(fail_times: int) -> str:
        from django_jobs import current_job

        _record()
        context = current_job()
        assert context is not None
        if context.attempt <= fail_times:
            raise ConnectionError(f"flaky attempt {context.attempt}")
        return "ok"
