"""``enqueue()`` and ``enqueue_many()``: validate arguments, then write job rows in the caller's
transaction."""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, ParamSpec, TypeVar, overload

from django.db import connections, transaction
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from . import lifecycle, tracing
from .conf import jobs_settings
from .db import inserts, workflows
from .db.connection import is_postgres
from .exceptions import InvalidJobArguments, InvalidJobOptions
from .models import KEY_HOLDERS, Job, JobStatus, UniqueWhile
from .payload import encode_arguments
from .registry import Call, JobDefinition, resolve
from .signals import job_enqueued

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_FIELDS = [(f.attname, f) for f in Job._meta.concrete_fields]


def _fixed_columns(definition: JobDefinition[..., Any]) -> dict[str, Any]:
    """The column values every job of one enqueue call shares."""
    options = definition.options
    now = timezone.now()
    if options.run_at is not None:
        run_at = options.run_at
    elif options.delay is not None:
        run_at = now + options.delay
    elif options.debounce is not None:
        run_at = now + options.debounce
    else:
        run_at = now
    traceparent, tracestate = tracing.trace_context() if tracing.ENABLED else tracing.NO_CONTEXT
    return {
        "name": definition.name,
        "queue": options.queue or definition.queue or jobs_settings.DEFAULT_QUEUE,
        "priority": options.priority if options.priority is not None else definition.priority,
        "max_attempts": options.max_attempts or definition.effective_max_attempts,
        "timeout": definition.effective_timeout,
        "run_at": run_at,
        "created_at": now,
        "unique_key": options.unique_key,
        "unique_while": options.unique_while or UniqueWhile.ACTIVE.value,
        "concurrency_key": None,
        "rate_key": None,
        "sequence_key": None,
        # Set apart from the defaults for a job enqueued after others (_enqueue_after).
        "status": JobStatus.QUEUED.value,
        "pending_upstream": 0,
        "stopped_by": None,
        "last_error": "",
        "finished_at": None,
        "traceparent": traceparent,
        "tracestate": tracestate,
    }


@functools.cache
def _field_plan() -> list[tuple[str, Any]]:
    """How _new_job() fills each field: from the call, or with its default (computed once, or
    called per job where the default is callable: a fresh list or dict each time)."""
    plan: list[tuple[str, Any]] = []
    for attname, field in _FIELDS:
        if attname in ("id", "args", "kwargs") or attname in _FIXED_NAMES:
            plan.append((attname, None))
        elif field.has_default() and callable(field.default):
            plan.append(("call", field.default))
        else:
            plan.append(("value", field.get_default()))
    return plan


_FIXED_NAMES = (
    "name", "queue", "priority", "max_attempts", "timeout", "run_at", "created_at", "unique_key",
    "unique_while", "concurrency_key", "rate_key", "sequence_key", "status", "pending_upstream", "stopped_by",
    "last_error", "finished_at", "traceparent", "tracestate",
)
_KEY_NAMES = ("concurrency_key", "rate_key", "sequence_key")


def _new_job(
    fixed: dict[str, Any], args: list[Any], kwargs: dict[str, Any], job_id: int | None, using: str = ""
) -> Job[Any]:
    if _init_watched():
        return _new_job_by_init(fixed, args, kwargs, job_id, using)
    # Nothing listens to pre_init or post_init for Job: fill the instance's attributes directly,
    # as Model.__init__ would, at a fraction of its cost (a tenth of an enqueue()'s client time).
    return _filled({**_constant_defaults(), **fixed}, args, kwargs, job_id, using)


def _filled(
    values: dict[str, Any], args: list[Any], kwargs: dict[str, Any], job_id: int | None, using: str
) -> Job[Any]:
    """A Job whose attributes are ``values`` (every field's), with its own id, arguments and
    fresh mutable defaults, made without Model.__init__ (see _init_watched)."""
    job: Job[Any] = Job.__new__(Job)
    attributes = job.__dict__
    attributes.update(values)
    for attname, factory in _fresh_defaults():
        attributes[attname] = factory()
    attributes["id"], attributes["args"], attributes["kwargs"] = job_id, args, kwargs
    job._state = ModelState()
    if job_id is not None:
        job._state.adding = False
        job._state.db = using or jobs_settings.DATABASE
    return job


def _init_watched() -> bool:
    """Whether receivers of pre_init or post_init for Job expect every instance to go through
    Model.__init__ (their signals cache receivers per sender: this is a dict look-up)."""
    return pre_init.has_listeners(Job) or post_init.has_listeners(Job)


@functools.cache
def _constant_defaults() -> dict[str, Any]:
    """The default of every field whose default is a constant, by attname."""
    return {attname: value for (kind, value), (attname, _) in zip(_field_plan(), _FIELDS) if kind == "value"}


def _new_job_by_init(
    fixed: dict[str, Any], args: list[Any], kwargs: dict[str, Any], job_id: int | None, using: str = ""
) -> Job[Any]:
    # Positional construction is several times cheaper than keyword construction, which matters
    # for enqueue_many; fields not given take their model default (a fresh one for mutable JSON).
    values: list[Any] = []
    for kind, value in _field_plan():
        if kind == "value":
            values.append(value)
        elif kind == "call":
            values.append(value())
        elif kind == "args":
            values.append(args)
        elif kind == "kwargs":
            values.append(kwargs)
        elif kind == "id":
            values.append(job_id)
        else:
            values.append(fixed[kind])
    job: Job[Any] = Job(*values)  # type: ignore[misc]  # django-stubs types only keyword construction
    if job_id is not None:
        job._state.adding = False
        job._state.db = using or jobs_settings.DATABASE
    return job


def _new_jobs(
    fixed: dict[str, Any], pairs: list[tuple[list[Any], dict[str, Any]]], ids: list[int | None], using: str
) -> list[Job[Any] | None]:
    """The inserted rows as Job instances (None where nothing was inserted), in call order.

    Past the first, they are copies of the first with their own id, arguments and fresh mutable
    defaults, which costs a fraction of Model.__init__ (most of an enqueue_many's client time
    otherwise). Only when nothing listens to pre_init or post_init for Job: receivers there
    expect every instance to go through __init__.
    """
    if len(pairs) == 1:  # enqueue(): nothing to copy
        (args, kwargs), job_id = pairs[0], ids[0]
        return [_new_job(fixed, args, kwargs, job_id, using) if job_id is not None else None]
    jobs: list[Job[Any] | None] = []
    prototype: Job[Any] | None = None
    cloning = not _init_watched()
    for (args, kwargs), job_id in zip(pairs, ids):
        if job_id is None:
            jobs.append(None)
        elif prototype is None or not cloning:
            prototype = _new_job(fixed, args, kwargs, job_id, using)
            jobs.append(prototype)
        else:
            jobs.append(_filled(prototype.__dict__, args, kwargs, job_id, using))
    return jobs


@functools.cache
def _fresh_defaults() -> list[tuple[str, Any]]:
    """(attname, callable default) of the fields whose default must be made anew for each job."""
    return [(attname, value) for (kind, value), (attname, _) in zip(_field_plan(), _FIELDS) if kind == "call"]


@functools.cache
def _default_columns() -> dict[str, Any]:
    """The insert value of every column enqueue() leaves at its default (JSON as text)."""
    return {
        attname: inserts.json_text(field, field.get_default())
        for attname, field in inserts.INSERT_FIELDS
        if attname not in ("args", "kwargs") and attname not in _FIXED_NAMES
    }


def build_job(definition: JobDefinition[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Job[Any]:
    """Validate the arguments and return the unsaved row enqueue() would insert for them."""
    args, kwargs = list(args), dict(kwargs)
    encode_arguments(definition, args, kwargs)
    fixed = _fixed_columns(definition)
    fixed.update(zip(_KEY_NAMES, _flow_keys(definition, args, kwargs)))
    return _new_job(fixed, args, kwargs, None)


def _flow_keys(definition: JobDefinition[..., Any], args: list[Any], kwargs: dict[str, Any]) -> tuple[str | None, ...]:
    try:
        return definition.flow_keys(args, kwargs)
    except InvalidJobOptions as exc:
        raise InvalidJobArguments(f"Can't enqueue {definition.name!r}: {exc}") from None


def _existing(fixed: dict[str, Any], using: str) -> Job[Any] | None:
    """The job holding the unique_key of ``fixed`` in its scope (unique_while), if any."""
    holders = KEY_HOLDERS[UniqueWhile(fixed["unique_while"])]
    return Job.objects.using(using).filter(holders, unique_key=fixed["unique_key"]).first()


# A @job function's arguments are checked against its parameters, and its job knows its result
# type (for an async def, the coroutine's); a job given by name is checked when called. (The
# overloads take no plain callable: a @job function would match it whatever its arguments.)
@overload
def enqueue(
    target: JobDefinition[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
) -> Job[T]: ...
@overload
def enqueue(target: JobDefinition[P, R], *args: P.args, **kwargs: P.kwargs) -> Job[R]: ...
@overload
def enqueue(target: str, *args: Any, **kwargs: Any) -> Job[Any]: ...


def enqueue(target: str | JobDefinition[..., Any] | Callable[..., Any], *args: Any, **kwargs: Any) -> Job[Any]:
    """Enqueue one job by registered name or @job function; return its row.

    The row is written in the caller's transaction: it is invisible to workers until that commits,
    and never runs if it rolls back. With a ``unique_key`` that another job already holds, that
    job is returned instead of a new one (with ``on_duplicate="replace"`` or ``debounce``, a
    waiting one first takes this enqueue's arguments and run_at).
    """
    definition = resolve(target)
    return _enqueue_calls(definition, [(list(args), dict(kwargs))])[0]


@overload
def enqueue_many(
    target: JobDefinition[..., Coroutine[Any, Any, T]], calls: Iterable[Call], *, after: Iterable[Any] | None = None
) -> list[Job[T]]: ...
@overload
def enqueue_many(
    target: JobDefinition[..., R], calls: Iterable[Call], *, after: Iterable[Any] | None = None
) -> list[Job[R]]: ...
@overload
def enqueue_many(target: str, calls: Iterable[Call], *, after: Iterable[Any] | None = None) -> list[Job[Any]]: ...


def enqueue_many(
    target: str | JobDefinition[..., Any] | Callable[..., Any],
    calls: Iterable[Call],
    *,
    after: Iterable[Any] | None = None,
) -> list[Job[Any]]:
    """Enqueue one job per item in a single INSERT; each item is a kwargs dict or an args list.

    With ``after`` (jobs or their ids), every one of them waits on those jobs, as
    ``using(after=...)`` does.

    Returns the jobs in the order given; where a unique_key was already held, the existing job.
    With ``on_duplicate="replace"`` or ``debounce`` (one key for the whole batch, each item
    replacing the one before it) every item is validated and only the last is written: the one
    job is returned for every item.
    """
    definition = resolve(target)
    if after is not None:
        definition = definition.using(after=after)
    with _collector_paused():
        return _enqueue_many(definition, calls)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while a batch's objects are built.

    A batch of 10,000 jobs allocates some 50,000 lists, dicts and instances, none of them in a
    reference cycle; the allocations alone trigger dozens of collections, including full ones that
    walk every object of the project (measured: about a third of enqueue_many's time). Collection
    resumes, if it was on, as soon as the batch is built; nothing it would have freed is lost.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _enqueue_many(definition: JobDefinition[..., Any], calls: Iterable[Call]) -> list[Job[Any]]:
    pairs: list[tuple[list[Any], dict[str, Any]]] = []
    for call in calls:
        if isinstance(call, dict):
            pairs.append(([], dict(call)))
        elif isinstance(call, (list, tuple)):
            pairs.append((list(call), {}))
        else:
            raise InvalidJobArguments(
                f"enqueue_many({definition.name!r}, …) takes dicts of keyword arguments or lists of "
                f"positional ones, not {type(call).__name__}."
            )
    return _enqueue_calls(definition, pairs) if pairs else []


def _enqueue_calls(definition: JobDefinition[..., Any], pairs: list[tuple[list[Any], dict[str, Any]]]) -> list[Job[Any]]:
    limit = int(jobs_settings.MAX_PAYLOAD_BYTES)
    dumped = [encode_arguments(definition, args, kwargs, limit) for args, kwargs in pairs]
    if definition.options.replaces and len(pairs) > 1:
        # using() gives the batch one unique_key, so each item would replace the one before it;
        # writing the last alone leaves the same job, and one statement can't change a row twice.
        return _enqueue_calls(definition, pairs[-1:]) * len(pairs)
    fixed = _fixed_columns(definition)
    count = len(pairs)
    shared = {**_default_columns(), **fixed}
    varying: dict[str, list[Any]] = {}
    keys = [_flow_keys(definition, args, kwargs) for args, kwargs in pairs] if definition.keyed else []
    if count == 1:
        shared["args"], shared["kwargs"] = dumped[0]
        if keys:
            fixed.update(zip(_KEY_NAMES, keys[0]))
            shared.update(zip(_KEY_NAMES, keys[0]))
    else:
        varying["args"], varying["kwargs"] = [a for a, _ in dumped], [k for _, k in dumped]
        if keys:
            for position, column in enumerate(_KEY_NAMES):
                varying[column] = [k[position] for k in keys]
                del shared[column]
    if definition.options.after:
        return _enqueue_after(definition, pairs, shared, varying, fixed, keys)
    if definition.sequence_key is not None:
        # Ids must follow commit order within a sequence, or a worker could run a later job
        # before an earlier one commits: enqueues of one sequence take turns (db/inserts.py).
        return _enqueue_in_sequence(definition, pairs, shared, varying, fixed, keys)
    return _insert_and_announce(definition, pairs, shared, varying, fixed, keys)


def _enqueue_after(
    definition: JobDefinition[..., Any], pairs: list[tuple[list[Any], dict[str, Any]]], shared: dict[str, Any],
    varying: dict[str, list[Any]], fixed: dict[str, Any], keys: list[tuple[str | None, ...]],
) -> list[Job[Any]]:
    """Enqueue jobs that wait on ``using(after=...)``: waiting, queued at once when every upstream
    job has succeeded, or stopped when one has failed for good (lifecycle.arm)."""
    using = jobs_settings.DATABASE
    after = definition.options.after or ()
    if not is_postgres(using):
        raise InvalidJobOptions(
            f"Can't enqueue {definition.name!r} with after=: jobs that wait on other jobs need "
            f"PostgreSQL (the database {using!r} is {connections[using].vendor}). Enqueue it from the "
            f"upstream job's last step instead, or run the project on PostgreSQL."
        )
    for job_id, db in after:
        if db is not None and db != using:
            raise InvalidJobOptions(
                f"after= names job #{job_id}, a row of the database {db!r}, but jobs are enqueued in "
                f"{using!r} (DJANGO_JOBS['DATABASE']): a job can only wait on jobs of its own database."
            )
    ids = [job_id for job_id, _ in after]
    with transaction.atomic(using=using):
        statuses = workflows.hold_upstream(using, ids)
        missing = [job_id for job_id in ids if job_id not in statuses]
        if missing:
            raise InvalidJobOptions(
                f"after= names job #{missing[0]}, which doesn't exist in the database {using!r}"
                + (f" (nor {len(missing) - 1} other(s) named)" if len(missing) > 1 else "")
                + ": pass jobs enqueue() returned, or ids of jobs not pruned yet."
            )
        armed = lifecycle.arm(statuses)
        decided = {
            "status": armed.status.value, "pending_upstream": armed.pending, "stopped_by": armed.stopped_by,
            "last_error": armed.reason, "finished_at": timezone.now() if armed.status == JobStatus.STOPPED else None,
        }
        fixed.update(decided)
        shared.update(decided)
        if definition.sequence_key is not None:
            jobs = _enqueue_in_sequence(definition, pairs, shared, varying, fixed, keys)
        else:
            jobs = _insert_and_announce(definition, pairs, shared, varying, fixed, keys)
        workflows.add_edges(using, ids, [job.pk for job in jobs])
    return jobs


def _enqueue_in_sequence(
    definition: JobDefinition[..., Any], pairs: list[tuple[list[Any], dict[str, Any]]], shared: dict[str, Any],
    varying: dict[str, list[Any]], fixed: dict[str, Any], keys: list[tuple[str | None, ...]],
) -> list[Job[Any]]:
    using = jobs_settings.DATABASE
    with transaction.atomic(using=using):
        inserts.lock_sequences(using, {k[2] for k in keys if k[2] is not None})
        return _insert_and_announce(definition, pairs, shared, varying, fixed, keys)


def _insert_and_announce(
    definition: JobDefinition[..., Any], pairs: list[tuple[list[Any], dict[str, Any]]], shared: dict[str, Any],
    varying: dict[str, list[Any]], fixed: dict[str, Any], keys: list[tuple[str | None, ...]],
) -> list[Job[Any]]:
    using = jobs_settings.DATABASE
    count = len(pairs)
    if definition.options.replaces:
        return [_replace_and_announce(definition, pairs[0], shared, fixed, using)]
    # ON CONFLICT DO NOTHING never raises, so the caller's transaction is never poisoned.
    for _ in range(5):
        ids = inserts.insert_columns(using, shared, varying, count)
        jobs = _new_jobs(fixed, pairs, ids, using)
        if count > 1 and keys:
            for job, job_keys in zip(jobs, keys):
                if job is not None:
                    job.concurrency_key, job.rate_key, job.sequence_key = job_keys
        if job_enqueued.has_listeners(Job):
            for job in jobs:
                if job is not None:
                    job_enqueued.send(sender=Job, job=job)
        if all(job is not None for job in jobs):
            return jobs  # type: ignore[return-value]
        existing = _existing(fixed, using)
        if existing is not None:
            return [job if job is not None else existing for job in jobs]
        if count > 1:
            return [job for job in jobs if job is not None]
        # The holder of the key finished between our INSERT and SELECT: try again.
    raise _lost_holder(definition, fixed)


def _replace_and_announce(
    definition: JobDefinition[..., Any], pair: tuple[list[Any], dict[str, Any]], shared: dict[str, Any],
    fixed: dict[str, Any], using: str,
) -> Job[Any]:
    # ON CONFLICT DO UPDATE … WHERE never raises either (db/inserts.py: upsert_row).
    for _ in range(5):
        written = inserts.upsert_row(using, shared, debounce=definition.options.debounce is not None)
        if written is not None:
            job_id, inserted = written
            if not inserted:
                # Replaced: job_enqueued went out when the job was inserted.
                return Job.objects.using(using).get(pk=job_id)
            job = _new_job(fixed, *pair, job_id, using)
            if job_enqueued.has_listeners(Job):
                job_enqueued.send(sender=Job, job=job)
            return job
        # The holder had started (or is in another sequence): return it unchanged.
        existing = _existing(fixed, using)
        if existing is not None:
            return existing
        # It finished between our INSERT and SELECT: try again.
    raise _lost_holder(definition, fixed)


def _lost_holder(definition: JobDefinition[..., Any], fixed: dict[str, Any]) -> RuntimeError:
    return RuntimeError(f"Could not enqueue {definition.name!r} with unique_key={fixed['unique_key']!r}")
