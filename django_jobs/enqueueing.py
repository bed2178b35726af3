"""``enqueue()`` and ``enqueue_many()``: validate arguments, then write job rows in the caller's
transaction."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from django.utils import timezone

from . import queries
from .conf import jobs_settings
from .exceptions import InvalidJobArguments, PayloadTooLarge
from .models import ACTIVE_STATUSES, Job
from .payload import check_json, payload_size
from .registry import JobDefinition, resolve
from .signals import job_enqueued


def _validate(definition: JobDefinition, args: list[Any], kwargs: dict[str, Any]) -> None:
    try:
        definition.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidJobArguments(
            f"Can't enqueue {definition.name!r}: {exc}. Its signature is "
            f"{definition.func.__name__}{definition.signature}."
        ) from None
    check_json(definition.name, args, kwargs)
    limit = int(jobs_settings.MAX_PAYLOAD_BYTES)
    size = payload_size(args, kwargs)
    if size > limit:
        raise PayloadTooLarge(
            f"Can't enqueue {definition.name!r}: its arguments are {size:,} bytes of JSON, over the "
            f"{limit:,}-byte limit. Store the data in a table and pass its id, or raise "
            f'DJANGO_JOBS["MAX_PAYLOAD_BYTES"].'
        )


def _build(definition: JobDefinition, args: list[Any], kwargs: dict[str, Any]) -> Job:
    _validate(definition, args, kwargs)
    options = definition.options
    now = timezone.now()
    if options.run_at is not None:
        run_at = options.run_at
    elif options.delay is not None:
        run_at = now + options.delay
    else:
        run_at = now
    return Job(
        name=definition.name,
        args=args,
        kwargs=kwargs,
        queue=options.queue or definition.queue or jobs_settings.DEFAULT_QUEUE,
        priority=options.priority if options.priority is not None else definition.priority,
        max_attempts=options.max_attempts or definition.effective_max_attempts,
        timeout=definition.effective_timeout,
        run_at=run_at,
        created_at=now,
        unique_key=options.unique_key,
    )


def validate_arguments(definition: JobDefinition, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise InvalidJobArguments or InvalidPayload unless enqueue() would accept these arguments."""
    _validate(definition, list(args), dict(kwargs))


def build_job(definition: JobDefinition, args: list[Any], kwargs: dict[str, Any]) -> Job:
    """Validate the arguments and return the unsaved row enqueue() would insert for them."""
    return _build(definition, list(args), dict(kwargs))


def _existing(job: Job, using: str) -> Job | None:
    return Job.objects.using(using).filter(unique_key=job.unique_key, status__in=ACTIVE_STATUSES).first()


def enqueue(target: str | JobDefinition | Callable[..., Any], *args: Any, **kwargs: Any) -> Job:
    """Enqueue one job by registered name or @job function; return its row.

    The row is written in the caller's transaction: it is invisible to workers until that commits,
    and never runs if it rolls back. With a ``unique_key`` that an active job already holds, the
    existing job is returned instead of a new one.
    """
    definition = resolve(target)
    job = _build(definition, list(args), dict(kwargs))
    using = jobs_settings.DATABASE
    # ON CONFLICT DO NOTHING never raises, so the caller's transaction is never poisoned.
    for _ in range(5):
        if queries.insert_jobs([job], using)[0]:
            job_enqueued.send(sender=Job, job=job)
            return job
        existing = _existing(job, using)
        if existing is not None:
            return existing
        # The holder of the key finished between our INSERT and SELECT: try again.
    raise RuntimeError(f"Could not enqueue {definition.name!r} with unique_key={job.unique_key!r}")


def enqueue_many(
    target: str | JobDefinition | Callable[..., Any],
    calls: Iterable[dict[str, Any] | list[Any] | tuple[Any, ...]],
) -> list[Job]:
    """Enqueue one job per item in a single INSERT; each item is a kwargs dict or an args list.

    Returns the jobs in the order given; where a unique_key was already held, the existing job.
    """
    definition = resolve(target)
    jobs: list[Job] = []
    for call in calls:
        if isinstance(call, dict):
            jobs.append(_build(definition, [], dict(call)))
        elif isinstance(call, (list, tuple)):
            jobs.append(_build(definition, list(call), {}))
        else:
            raise InvalidJobArguments(
                f"enqueue_many({definition.name!r}, …) takes dicts of keyword arguments or lists of "
                f"positional ones, not {type(call).__name__}."
            )
    if not jobs:
        return []
    using = jobs_settings.DATABASE
    result: list[Job] = []
    inserted = queries.insert_jobs(jobs, using)
    for job, ok in zip(jobs, inserted):
        result.append(job if ok else (_existing(job, using) or job))
    if job_enqueued.receivers:
        for job, ok in zip(jobs, inserted):
            if ok:
                job_enqueued.send(sender=Job, job=job)
    return result
