"""A backend for Django's Tasks framework: ``@task`` functions run as django-jobs jobs.

    TASKS = {"default": {"BACKEND": "django_jobs.backend.JobsBackend", "QUEUES": ["default"]}}

Django 6 ships the framework as ``django.tasks``; on Django 5.2 the ``django-tasks`` package
backports it (``pip install "django-jobs[tasks]"``). This module works with either.

How a task becomes a job: Django calls ``validate_task()`` each time a Task is built, first when
``@task`` decorates the function at import. That call registers the function in django-jobs'
registry under the task's ``module_path``, so workers run tasks like any ``@job``, by registered
name: a worker never imports a path it read from a row. Workers import the ``tasks`` module of
every installed app at startup (``registry.autodiscover``) for that reason, and ``enqueue()``
refuses a task whose module was first imported after startup (unless ``DJANGO_JOBS["IMPORTS"]``
lists it).

Our statuses map onto Django's four (``STATUS_MAP``): waiting, queued and retrying are READY
(retrying is "ready to be executed again"; waiting, on upstream jobs, is not started yet), running is RUNNING, succeeded is SUCCESSFUL, and both stopped
and dead are FAILED: the task ended without succeeding and won't run again unless an operator
retries it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.db import DatabaseError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .conf import jobs_settings
from .context import current_job
from .enqueueing import enqueue
from .exceptions import InvalidJobOptions
from .models import FINISHED_STATUSES, Job, JobStatus
from .registry import job, registry
from .retry import Backoff
from .signals import job_enqueued, job_finished, job_started

if TYPE_CHECKING:
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json
else:
    try:  # Django 6.0 and newer
        from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import TaskError
        from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
        from django.tasks.signals import task_enqueued, task_finished, task_started
        from django.utils.json import normalize_json
    except ImportError:
        try:  # Django 5.2 with the django-tasks backport
            from django_tasks.backends.base import BaseTaskBackend
            from django_tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
            from django_tasks.exceptions import InvalidTaskError as InvalidTask
            from django_tasks.exceptions import TaskResultDoesNotExist
            from django_tasks.signals import task_enqueued, task_finished, task_started
            from django_tasks.utils import normalize_json
        except ImportError as exc:
            raise ImportError(
                "django_jobs.backend is a backend for Django's Tasks framework, which needs "
                "Django 6.0 or newer, or on Django 5.2 the django-tasks backport: "
                'pip install "django-jobs[tasks]" and add "django_tasks" to INSTALLED_APPS.'
            ) from exc

logger = logging.getLogger("django_jobs")

#: Our job statuses as Django's task statuses.
STATUS_MAP: dict[str, Any] = {
    JobStatus.WAITING: TaskResultStatus.READY,
    JobStatus.QUEUED: TaskResultStatus.READY,
    JobStatus.RETRYING: TaskResultStatus.READY,
    JobStatus.RUNNING: TaskResultStatus.RUNNING,
    JobStatus.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    JobStatus.STOPPED: TaskResultStatus.FAILED,
    JobStatus.DEAD: TaskResultStatus.FAILED,
}

#: Job options a task can carry, on top of Django's own (priority, queue_name, run_after).
TASK_OPTIONS = ("max_attempts", "timeout", "backoff", "dont_retry", "unique_key")
# The ones that belong to the job definition rather than to one enqueue.
_DEFINITION_OPTIONS = ("max_attempts", "timeout", "backoff", "dont_retry")
_OPTIONS_ATTRIBUTE = "django_jobs_options"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobsTask(Task):
    """A Task with django-jobs' options; ``JobsBackend`` builds its tasks with this class.

    On Django 6.1+ (and the django-tasks backport) ``@task(max_attempts=5, timeout=30)`` passes
    the options through to it; on Django 6.0 stack ``@task_options(...)`` under ``@task``.
    """

    max_attempts: int | None = None
    timeout: float | timedelta | None = None
    backoff: Backoff | None = None
    dont_retry: tuple[type[BaseException], ...] = ()
    unique_key: str | None = None

    def using(
        self,
        *,
        unique_key: str | None = None,
        max_attempts: int | None = None,
        **django_options: Any,
    ) -> JobsTask:
        """Return a copy with other defaults: Django's options, plus ``unique_key`` and
        ``max_attempts`` for the enqueues of this copy."""
        # Explicit base class: zero-argument super() fails in a slotted dataclass before 3.14.
        copy = Task.using(self, **django_options)
        given: dict[str, Any] = {"unique_key": unique_key, "max_attempts": max_attempts}
        changes = {name: value for name, value in given.items() if value is not None}
        return dataclasses.replace(copy, **changes) if changes else copy


def task_options(
    *,
    max_attempts: int | None = None,
    timeout: float | timedelta | None = None,
    backoff: Backoff | None = None,
    dont_retry: Iterable[type[BaseException]] = (),
    unique_key: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a task function django-jobs options; stack it under ``@task`` (needed on Django 6.0).

    ``@task`` then ``@task_options(max_attempts=5, timeout=30)`` on the line below it.
    """
    given = {
        "max_attempts": max_attempts,
        "timeout": timeout,
        "backoff": backoff,
        "dont_retry": tuple(dont_retry),
        "unique_key": unique_key,
    }

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if isinstance(func, Task):
            raise InvalidJobOptions(
                f"@task_options is above @task on {func.module_path}; put it below, so it "
                f"decorates the function before @task turns it into a task."
            )
        setattr(func, _OPTIONS_ATTRIBUTE, {k: v for k, v in given.items() if v not in (None, ())})
        return func

    return decorate


def _options(task: Any, *, defining: bool = False) -> dict[str, Any]:
    """A task's django-jobs options, from ``@task(...)`` or ``using()``, over the ones from
    ``@task_options(...)``. ``defining``: refuse an option given to both decorators."""
    from_decorator: dict[str, Any] = getattr(task.func, _OPTIONS_ATTRIBUTE, {})
    options = dict(from_decorator)
    for name in TASK_OPTIONS:
        value = getattr(task, name, None)
        if value in (None, ()):
            continue
        if defining and name in from_decorator and from_decorator[name] != value:
            raise InvalidTask(
                f"{task.module_path} sets {name} twice, to {value!r} in @task and to "
                f"{from_decorator[name]!r} in @task_options; keep one."
            )
        options[name] = value
    return options


def registered_task(name: str) -> Any | None:
    """The Task registered under a job name, or None when the name isn't a task's."""
    definition = registry.get(name)
    return getattr(definition.func, "django_task", None) if definition is not None else None


def _runner(task: Any) -> Callable[..., Any]:
    """The function a worker calls for this task: it supplies the context, awaits coroutines and
    normalises the return value the way Django's own backends do."""

    @functools.wraps(task.func)
    def run(*args: Any, **kwargs: Any) -> Any:
        if task.takes_context:
            value = task.call(TaskContext(task_result=_current_result(task)), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        try:
            return normalize_json(value)
        except (TypeError, ValueError):
            return value  # run_job() stores no result and says why in the job's history

    signature = inspect.signature(task.func)
    if task.takes_context:
        # Callers never pass the context: enqueue() checks arguments against the rest.
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    run.__signature__ = signature  # type: ignore[attr-defined]
    run.django_task = task  # type: ignore[attr-defined]
    return run


def _register(task: Any) -> None:
    """Register a task as a job, once per function (``using()`` copies are tasks too)."""
    existing = registered_task(task.module_path)
    if existing is not None and existing.func is task.func:
        return
    options = {k: v for k, v in _options(task, defining=True).items() if k in _DEFINITION_OPTIONS}
    try:
        job(_runner(task), name=task.module_path, queue=task.queue_name, priority=task.priority,
            **options)
    except InvalidJobOptions as exc:
        raise InvalidTask(f"{task.module_path}: {exc}") from exc
    if apps.ready:
        # Django had finished starting when this module was imported (by a view, a URLconf, a
        # test): a worker's startup doesn't import it, so no worker knows the task.
        _registered_after_startup[task.module_path] = task.func.__module__
    else:
        _registered_after_startup.pop(task.module_path, None)
    _connect_signals()


#: Tasks registered once Django had started, by name: their module.
_registered_after_startup: dict[str, str] = {}


def _check_workers_import(task: Any) -> None:
    """Refuse a task whose module workers never import: its jobs would only end dead there."""
    module = _registered_after_startup.get(task.module_path)
    imports = jobs_settings.IMPORTS
    if module is None or (isinstance(imports, (list, tuple)) and module in imports):
        return
    raise InvalidTask(
        f"Can't enqueue {task.module_path}: its module {module!r} isn't imported when a process "
        f"starts, so workers don't know the task and would end its jobs dead with "
        f"JobNotRegistered. Move the task into the tasks.py module of an app in INSTALLED_APPS, "
        f'or add {module!r} to DJANGO_JOBS["IMPORTS"].'
    )


def _task_for_row(task: Any, row: Job) -> Any:
    """The registered task as the row was enqueued: its queue and priority."""
    if (row.queue, row.priority) == (task.queue_name, task.priority):
        return task
    try:
        return dataclasses.replace(task, queue_name=row.queue, priority=row.priority)
    except InvalidTask:
        return task  # e.g. QUEUES no longer lists the row's queue


def _error(entry: dict[str, Any]) -> Any:
    error = entry["error"]
    # Timeouts and lost workers have no traceback: the process was killed. Say what happened.
    text = error.get("traceback") or f"{error['class']}: {error.get('message', '')}\n"
    return TaskError(exception_class_path=error["class"], traceback=text)


def task_result(row: Job, task: Any, backend: str) -> Any:
    """Describe a job row as Django's TaskResult (status per ``STATUS_MAP``)."""
    # Entries of attempts (not operator events); a handed-back attempt was given back unspent.
    attempts = [
        e for e in row.history or [] if "attempt" in e and e.get("outcome") != "handed_back"
    ]
    worker_ids = [str(e.get("worker", "")) for e in attempts]
    if row.status == JobStatus.RUNNING:
        worker_ids.append(row.worker_id)
    # A finished attempt's start is in its history entry; the current one's in started_at.
    first_start = parse_datetime(attempts[0]["started_at"]) if attempts else None
    last_start = parse_datetime(attempts[-1]["started_at"]) if attempts else None
    if row.status == JobStatus.RUNNING or last_start is None:
        last_start = row.started_at
    result: Any = TaskResult(
        task=task,
        id=str(row.pk),
        status=STATUS_MAP[row.status],
        enqueued_at=row.created_at,
        started_at=first_start or row.started_at,
        finished_at=row.finished_at,
        last_attempted_at=last_start,
        args=row.args,
        kwargs=row.kwargs,
        backend=backend,
        errors=[_error(e) for e in attempts if e.get("error")],
        worker_ids=worker_ids,
    )
    if row.status == JobStatus.SUCCEEDED:
        object.__setattr__(result, "_return_value", row.result)
    return result


def _current_result(task: Any) -> Any:
    context = current_job()
    if context is None:
        raise RuntimeError(
            f"{task.module_path} takes a context, which only exists while a worker runs it; "
            f"call it through .enqueue(), or call task.func directly with a context of your own."
        )
    row = Job.objects.using(context.using).get(pk=context.id)
    return task_result(row, _task_for_row(task, row), task.backend)


def _plain_json(values: Any) -> Any:
    # Django's backends accept tuples and bytes and store them as lists and text; anything else
    # is left for enqueue(), whose errors say which argument is wrong and what to pass instead.
    try:
        return normalize_json(values)
    except (TypeError, ValueError, RecursionError):
        return values


class JobsBackend(BaseTaskBackend):  # type: ignore[misc,unused-ignore]
    """Django's Tasks framework on django-jobs: each enqueue writes a job row."""

    task_class = JobsTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: Any) -> None:
        """Check the task as Django does, then register it as a job."""
        super().validate_task(task)
        _register(task)

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Write the task's job row in the caller's transaction; return its TaskResult.

        With a ``unique_key`` an active job already holds, the result is that job's.
        """
        self.validate_task(task)
        _check_workers_import(task)
        definition = registry.lookup(task.module_path)
        options = _options(task)
        using: dict[str, Any] = {"queue": task.queue_name, "priority": task.priority}
        if task.run_after is not None:
            run_after = task.run_after
            if timezone.is_naive(run_after):  # only possible with USE_TZ = False
                run_after = timezone.make_aware(run_after)
            using["run_at"] = run_after
        for name in ("unique_key", "max_attempts"):
            if options.get(name) is not None:
                using[name] = options[name]
        args, kwargs = _plain_json(list(args)), _plain_json(dict(kwargs))
        row = enqueue(definition.using(**using), *args, **kwargs)
        return task_result(row, task, self.alias)

    def get_result(self, result_id: str) -> Any:
        """The TaskResult of a job enqueued as a task; TaskResultDoesNotExist if there is none."""
        try:
            pk = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(
                f"{result_id!r} is not a task result id of {self.alias!r}: they are job ids, "
                f"whole numbers."
            ) from None
        row = Job.objects.using(jobs_settings.DATABASE).filter(pk=pk).first()
        if row is None:
            raise TaskResultDoesNotExist(
                f"No job has the id {result_id!r} (finished jobs are pruned after "
                f'DJANGO_JOBS["RETENTION"]).'
            )
        task = registered_task(row.name)
        if task is None:
            raise TaskResultDoesNotExist(
                f"Job {pk} runs {row.name!r}, which is not a task defined in this process: either "
                f"it is a plain @job, or the module defining the task hasn't been imported (put "
                f"tasks in a tasks.py module of an installed app)."
            )
        return task_result(row, _task_for_row(task, row), self.alias)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Report misconfiguration of this TASKS entry (IDs in docs/how-to/tasks-api.md)."""
        from django.apps import apps

        where = f"TASKS[{self.alias!r}]"
        messages: list[checks.CheckMessage] = []
        if not apps.is_installed("django_jobs"):
            messages.append(checks.Error(
                f"{where} uses django_jobs.backend.JobsBackend, but django_jobs is not in "
                f"INSTALLED_APPS.",
                hint='Add "django_jobs" to INSTALLED_APPS and run migrate.',
                id="django_jobs.E201",
            ))
        queues = getattr(settings, "TASKS", {}).get(self.alias, {}).get("QUEUES", [])
        if isinstance(queues, str) or not all(isinstance(q, str) and q for q in queues):
            messages.append(checks.Error(
                f"{where}['QUEUES'] is {queues!r}; it must be a list of non-empty queue names.",
                hint='For example "QUEUES": ["default", "emails"].',
                id="django_jobs.E202",
            ))
        if self.options:
            messages.append(checks.Error(
                f"{where}['OPTIONS'] has {sorted(self.options)!r}; JobsBackend takes no OPTIONS.",
                hint="Configure django-jobs in DJANGO_JOBS, and a task's retries and timeout "
                "with @task(max_attempts=..., timeout=...) or @task_options(...).",
                id="django_jobs.E203",
            ))
        return messages


# -- Django's task signals, translated from ours ------------------------------------------------
# The worker sends job_started/job_finished from its main process; these receivers send
# task_started/task_finished for the jobs that are tasks, so tools listening to Django's signals
# work. send_robust: a failing receiver must never take the worker loop down.


def _send(signal: Any, row: Job | None, task: Any) -> None:
    if row is None:
        return
    result = task_result(row, _task_for_row(task, row), task.backend)
    for receiver, response in signal.send_robust(sender=JobsBackend, task_result=result):
        if isinstance(response, Exception):
            logger.error(
                "django_jobs event=task_signal_failed receiver=%s job=%s",
                getattr(receiver, "__qualname__", receiver), row.pk, exc_info=response,
            )


def _fetch(job_id: int) -> Job | None:
    try:
        return Job.objects.using(jobs_settings.DATABASE).filter(pk=job_id).first()
    except DatabaseError:
        logger.warning("django_jobs event=task_signal_skipped job=%s reason=database_error", job_id)
        return None


def _on_enqueued(sender: Any, job: Job, **kwargs: Any) -> None:
    task = registered_task(job.name)
    if task is not None:
        _send(task_enqueued, job, task)


def _on_started(sender: Any, job_id: int, name: str, **kwargs: Any) -> None:
    task = registered_task(name)
    if task is not None:
        _send(task_started, _fetch(job_id), task)


def _on_finished(sender: Any, job_id: int, name: str, status: str, **kwargs: Any) -> None:
    task = registered_task(name)
    # An attempt that leads to a retry doesn't finish the task: TaskResult.is_finished is False.
    if task is not None and status in FINISHED_STATUSES:
        _send(task_finished, _fetch(job_id), task)


def _connect_signals() -> None:
    # Connected with the first task, so that projects without tasks pay nothing per job.
    job_enqueued.connect(_on_enqueued, dispatch_uid="django_jobs.backend.enqueued")
    job_started.connect(_on_started, dispatch_uid="django_jobs.backend.started")
    job_finished.connect(_on_finished, dispatch_uid="django_jobs.backend.finished")


__all__ = [
    "JobsBackend",
    "JobsTask",
    "STATUS_MAP",
    "registered_task",
    "task_options",
    "task_result",
]
