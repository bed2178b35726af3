"""The ``@job`` decorator and the name → job lookup. Only jobs registered here ever run."""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import math
import types
import typing
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypedDict, TypeVar, Unpack, overload
from uuid import UUID

from .conf import jobs_settings
from .exceptions import InvalidCron, InvalidJobOptions, JobNotRegistered
from .flow import KeyTemplate, Limits, Rate, check_concurrency, key_template, parse_rate
from .retry import Backoff, default_backoff

if TYPE_CHECKING:
    from .models import Job

#: The parameters of a job's function, and what it returns (for an ``async def`` job, the
#: coroutine; its jobs' result is what the coroutine returns, ``T``).
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class Registry:
    """Registered jobs by name."""

    def __init__(self) -> None:
        self._jobs: dict[str, JobDefinition[..., Any]] = {}

    def register(self, definition: JobDefinition[..., Any]) -> None:
        existing = self._jobs.get(definition.name)
        if existing is not None and existing.func_path != definition.func_path:
            raise InvalidJobOptions(
                f"Two jobs are registered as {definition.name!r}: {existing.func_path} and "
                f"{definition.func_path}. Give one of them another name with @job(name=...)."
            )
        self._jobs[definition.name] = definition

    def get(self, name: str) -> JobDefinition[..., Any] | None:
        return self._jobs.get(name)

    def lookup(self, name: str) -> JobDefinition[..., Any]:
        """Return the job registered as ``name`` or raise JobNotRegistered saying what to do."""
        try:
            return self._jobs[name]
        except KeyError:
            pass
        raise JobNotRegistered(
            f"No job is registered as {name!r}.{self.did_you_mean(name)} Jobs are registered by decorating a "
            f"function with @job in a module that is imported at startup: put it in a jobs.py "
            f"module of an app in INSTALLED_APPS."
        )

    def did_you_mean(self, name: str) -> str:
        """`` Did you mean 'shop.send_email'?`` for the registered name closest to ``name``, or ""."""
        close = difflib.get_close_matches(name, self._jobs, n=1)
        return f" Did you mean {close[0]!r}?" if close else ""

    def names(self) -> list[str]:
        return sorted(self._jobs)

    def limits(self) -> Limits:
        """The concurrency and rate limits the registered jobs declare, by job name."""
        return Limits(
            concurrency={d.name: d.concurrency for d in self if d.concurrency is not None},
            rate={d.name: d.rate for d in self if d.rate is not None},
            sequence_continue=frozenset(d.name for d in self if d.sequence_on_dead == "continue"),
        )

    def __iter__(self) -> Iterator[JobDefinition[..., Any]]:
        return iter(list(self._jobs.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._jobs


registry = Registry()


# Limits of the job table's columns (models.Job): a longer value would be cut short, or refused
# with a database error that aborts the caller's transaction. tests/unit/test_registry.py checks them
# against the model.
NAME_MAX_LENGTH = 255
QUEUE_MAX_LENGTH = 100
UNIQUE_KEY_MAX_LENGTH = 255
# priority is an integer column (PostgreSQL's integer range). max_attempts is one too, but grows
# by one on every Retry() and is recomputed by the admin's retry: far below the column's limit.
PRIORITY_RANGE = (-(2**31), 2**31 - 1)
MAX_ATTEMPTS_LIMIT = 1_000_000


def _text_problem(what: str, value: object, limit: int) -> str | None:
    """Why ``value`` can't be stored in a varchar(``limit``) column unchanged, or None."""
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string, not {value!r}"
    if len(value) > limit:
        return (
            f"{what} is {len(value):,} characters long, over the limit of {limit}: "
            f"{value[:40]!r}… would be cut short"
        )
    if "\x00" in value:
        return f"{what} {value!r} contains a NUL character (\\x00), which PostgreSQL can't store"
    try:
        value.encode()
    except UnicodeEncodeError:
        return f"{what} {value!r} contains a lone surrogate, which isn't valid UTF-8"
    return None


def queue_problem(queue: object) -> str | None:
    """Why ``queue`` isn't a valid queue name, or None when it is.

    A valid name is at most 100 characters, without a comma or surrounding whitespace, so that
    ``runjobs --queue`` (which splits on commas and strips spaces) can name every queue.
    """
    problem = _text_problem("queue", queue, QUEUE_MAX_LENGTH)
    if problem:
        return problem
    assert isinstance(queue, str)
    if "," in queue:
        return f"queue {queue!r} contains a comma, which runjobs --queue reads as a separator"
    if queue != queue.strip():
        return f"queue {queue!r} starts or ends with whitespace, which runjobs --queue strips"
    return None


def name_problem(name: object) -> str | None:
    """Why ``name`` can't be a stored job's name (too long, or not storable text), or None."""
    return _text_problem("job name", name, NAME_MAX_LENGTH)


def _check_queue(queue: object) -> None:
    # An empty queue would quietly fall back to the default one; a non-string one be stringified.
    if queue is not None:
        problem = queue_problem(queue)
        if problem:
            raise InvalidJobOptions(f"{problem}.")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_priority(priority: object) -> None:
    low, high = PRIORITY_RANGE
    if not _is_int(priority):
        raise InvalidJobOptions(f"priority must be an int, not {type(priority).__name__} {priority!r}.")
    assert isinstance(priority, int)
    if not low <= priority <= high:
        raise InvalidJobOptions(f"priority must be between {low:,} and {high:,}, not {priority:,}.")


def _check_max_attempts(max_attempts: object) -> None:
    if not _is_int(max_attempts):
        raise InvalidJobOptions(
            f"max_attempts must be an int, not {type(max_attempts).__name__} {max_attempts!r}."
        )
    assert isinstance(max_attempts, int)
    if max_attempts < 1:
        raise InvalidJobOptions(f"max_attempts must be at least 1, not {max_attempts}.")
    if max_attempts > MAX_ATTEMPTS_LIMIT:
        raise InvalidJobOptions(f"max_attempts must be at most {MAX_ATTEMPTS_LIMIT:,}, not {max_attempts:,}.")


def _check_timeout(timeout: object) -> float | None:
    """Return ``timeout`` as seconds, refusing anything but a finite positive number or timedelta."""
    if timeout is None:
        return None
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise InvalidJobOptions(
            f"timeout must be seconds (an int or float) or a timedelta, not {type(timeout).__name__} {timeout!r}."
        )
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidJobOptions(f"timeout must be positive seconds (a finite number), not {timeout!r}.")
    return seconds


#: What enqueue() does when another job holds its unique_key: ``using(on_duplicate=…)``.
ON_DUPLICATE = {
    "return": "keep that job and return it (the default)",
    "replace": "give a waiting one this enqueue's arguments and run_at",
}
#: How long a job's unique_key keeps out others: ``using(unique_while=…)`` (models.UniqueWhile).
UNIQUE_WHILE = {
    "active": "while it is queued, retrying or running (the default)",
    "waiting": "until it starts: one more may wait while it runs",
}


def _choice_problem(option: str, value: object, choices: dict[str, str]) -> str | None:
    if value is None or (isinstance(value, str) and value in choices):
        return None
    accepted = "; ".join(f"{name!r}: {meaning}" for name, meaning in choices.items())
    return f"{option} must be one of {accepted}. Not {value!r}."


@dataclass(frozen=True)
class EnqueueOptions:
    """Per-enqueue options given with ``using()``. None means "the job's default"."""

    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    run_at: datetime | None = None
    delay: timedelta | None = None
    unique_key: str | None = None
    #: "return" (None) or "replace": see ON_DUPLICATE and docs/how-to/defining-jobs.md.
    on_duplicate: str | None = None
    #: Store the job due this long after the enqueue; a later enqueue with its key pushes it back.
    debounce: timedelta | None = None
    #: "active" (None) or "waiting": see UNIQUE_WHILE.
    unique_while: str | None = None
    #: Upstream jobs (``using(after=[...])``), as (id, database of the row given or None for an id).
    after: tuple[tuple[int, str | None], ...] | None = None

    @property
    def replaces(self) -> bool:
        """Whether a waiting job holding the unique_key takes this enqueue's arguments."""
        return self.on_duplicate == "replace" or self.debounce is not None

    def __post_init__(self) -> None:
        if self.run_at is not None and self.delay is not None:
            raise InvalidJobOptions("Give using() either run_at= or delay=, not both.")
        if self.run_at is not None and not isinstance(self.run_at, datetime):
            raise InvalidJobOptions(
                f"run_at must be an aware datetime, not {type(self.run_at).__name__} {self.run_at!r} "
                f"(django.utils.timezone.now() + timedelta(...))."
            )
        if self.run_at is not None and self.run_at.tzinfo is None:
            raise InvalidJobOptions(
                f"run_at={self.run_at!r} is a naive datetime; pass an aware one "
                f"(django.utils.timezone.now() + timedelta(...))."
            )
        if self.delay is not None and not isinstance(self.delay, timedelta):
            raise InvalidJobOptions(f"delay must be a timedelta, not {type(self.delay).__name__}.")
        if self.max_attempts is not None:
            _check_max_attempts(self.max_attempts)
        if self.unique_key is not None:
            problem = _text_problem("unique_key", self.unique_key, UNIQUE_KEY_MAX_LENGTH)
            if problem:
                raise InvalidJobOptions(f"{problem}.")
        if self.priority is not None:
            _check_priority(self.priority)
        _check_queue(self.queue)
        self._check_duplicates()
        if self.after is not None:
            _check_after(self)

    def _check_duplicates(self) -> None:
        for option, choices in (("on_duplicate", ON_DUPLICATE), ("unique_while", UNIQUE_WHILE)):
            problem = _choice_problem(option, getattr(self, option), choices)
            if problem:
                raise InvalidJobOptions(problem)
        if self.debounce is not None:
            if not isinstance(self.debounce, timedelta):
                raise InvalidJobOptions(
                    f"debounce must be a timedelta, not {type(self.debounce).__name__} {self.debounce!r} "
                    f"(debounce=timedelta(seconds=30))."
                )
            if self.debounce <= timedelta(0):
                raise InvalidJobOptions(
                    f"debounce must be a positive timedelta, not {self.debounce!r}: it is how long after "
                    f"the last enqueue of a burst the job runs. Leave it out to run the job at once."
                )
            if self.run_at is not None or self.delay is not None:
                when = "run_at=" if self.run_at is not None else "delay="
                raise InvalidJobOptions(
                    f"Give using() either debounce= or {when}, not both: debounce sets run_at itself, "
                    f"to the last enqueue's time plus debounce."
                )
            if self.on_duplicate == "return":
                raise InvalidJobOptions(
                    'debounce replaces the waiting job\'s arguments and run_at, which on_duplicate="return" '
                    'refuses: leave on_duplicate out (or use "replace").'
                )
        if self.unique_key is None:
            given = [name for name in ("on_duplicate", "debounce", "unique_while") if getattr(self, name) is not None]
            if given:
                raise InvalidJobOptions(
                    f"{'= and '.join(given)}= need{'s' if len(given) == 1 else ''} a unique_key, which "
                    f"names the jobs that are duplicates of each other: pass it in the same using() "
                    f'call, e.g. using(unique_key=f"webhook-{{account_id}}", {given[0]}=...).'
                )


#: One item of enqueue_many(): a dict of keyword arguments, or a list of positional ones.
Call = dict[str, Any] | list[Any] | tuple[Any, ...]


#: The most upstream jobs one job may wait on (docs/how-to/workflows.md).
MAX_UPSTREAM = 10_000


def upstream_ids(after: Any) -> tuple[tuple[int, str | None], ...]:
    """Read ``using(after=...)``: Job rows or ids, as (id, the row's database or None)."""
    if isinstance(after, (str, bytes)) or not isinstance(after, Iterable):
        raise InvalidJobOptions(
            f"after= takes a list of jobs (the rows enqueue() returned) or their ids, not {after!r}."
        )
    seen: dict[int, str | None] = {}
    for item in after:
        if isinstance(item, int) and not isinstance(item, bool):
            job_id, db = item, None
        elif isinstance(getattr(item, "pk", None), int) and hasattr(item, "_state"):
            job_id, db = item.pk, item._state.db
        else:
            raise InvalidJobOptions(
                f"after= takes saved jobs (the rows enqueue() returned) or their ids; {item!r} is neither."
            )
        if job_id <= 0:
            raise InvalidJobOptions(f"after= got the id {job_id}, which no job has.")
        seen.setdefault(job_id, db)
    return tuple(seen.items())


def _check_after(options: EnqueueOptions) -> None:
    assert options.after is not None
    if len(options.after) > MAX_UPSTREAM:
        raise InvalidJobOptions(
            f"after= names {len(options.after)} jobs; a job may wait on at most {MAX_UPSTREAM}. Wait on "
            f"fewer (for instance on one job per batch of chunks, each after its own chunks)."
        )
    if options.unique_key is not None:
        raise InvalidJobOptions(
            "after= and unique_key= can't be combined: a job that waits on others can't also be "
            "the one kept among duplicates. Give the unique_key to the upstream job instead."
        )


@dataclass(frozen=True)
class JobDefinition(Generic[P, R]):
    """A function registered with ``@job``. Calling it calls the function directly.

    Generic over the function's parameters and return type, so that type checkers check the
    arguments of ``enqueue()`` against the function and know the type of the job's result.
    """

    func: Callable[P, R]
    name: str
    queue: str | None = None
    priority: int = 0
    max_attempts: int | None = None
    timeout: float | None = None
    backoff: Backoff | None = None
    dont_retry: tuple[type[BaseException], ...] = ()
    options: EnqueueOptions = field(default_factory=EnqueueOptions)
    #: A five-field cron expression from ``@job(cron=…)``: workers keep a schedule for it.
    cron: str | None = None
    #: Flow control (docs/how-to/limits.md): at most ``concurrency`` running per concurrency key
    #: (the job name when there is no template), ``rate`` starts per rate key, and one at a time
    #: in id order per sequence key.
    concurrency: int | None = None
    concurrency_key: KeyTemplate | None = None
    rate: Rate | None = None
    rate_key: KeyTemplate | None = None
    sequence_key: KeyTemplate | None = None
    sequence_on_dead: str = "block"

    def __post_init__(self) -> None:
        # functools.update_wrapper(self, func) without its setattr, which a frozen dataclass
        # refuses, and without copying the function's __dict__, whose names could shadow fields:
        # the definition keeps the function's name, docstring and (through __wrapped__) signature.
        names = vars(self)
        for attribute in functools.WRAPPER_ASSIGNMENTS:
            try:
                names[attribute] = getattr(self.func, attribute)
            except AttributeError:
                pass
        names["__wrapped__"] = self.func

    if TYPE_CHECKING:
        # Set by __post_init__; declared here (not as fields) for type checkers.
        @property
        def __name__(self) -> str: ...
        @property
        def __qualname__(self) -> str: ...
        @property
        def __wrapped__(self) -> Callable[P, R]: ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    @cached_property
    def is_async(self) -> bool:
        """Whether the function is an ``async def``: a worker runs it on an event loop."""
        return inspect.iscoroutinefunction(self.func)

    @property
    def func_path(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"

    @property
    def effective_max_attempts(self) -> int:
        return self.max_attempts or int(jobs_settings.DEFAULT_MAX_ATTEMPTS)

    @property
    def effective_timeout(self) -> float | None:
        return self.timeout if self.timeout is not None else jobs_settings.DEFAULT_TIMEOUT

    @property
    def effective_backoff(self) -> Backoff:
        return self.backoff or default_backoff()

    @cached_property
    def signature(self) -> inspect.Signature:
        # Cached: enqueue binds arguments to it every time (cached_property writes the instance
        # __dict__ directly, so it works on a frozen dataclass).
        return inspect.signature(self.func)

    @property
    def keyed(self) -> bool:
        """Whether enqueue() computes flow-control keys for this job."""
        return self.concurrency is not None or self.rate is not None or self.sequence_key is not None

    def flow_keys(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
        """The (concurrency_key, rate_key, sequence_key) a job with these arguments is stored with."""
        if not self.keyed:
            return None, None, None
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        concurrency_key = rate_key = sequence_key = None
        if self.concurrency is not None:
            concurrency_key = self.concurrency_key.render(arguments) if self.concurrency_key else self.name
        if self.rate is not None:
            rate_key = self.rate_key.render(arguments) if self.rate_key else self.name
        if self.sequence_key is not None:
            sequence_key = self.sequence_key.render(arguments)
        return concurrency_key, rate_key, sequence_key

    def using(self, **options: Any) -> JobDefinition[P, R]:
        """Return a copy whose enqueues use these options (queue, priority, max_attempts,
        run_at, delay, unique_key, on_duplicate, debounce, unique_while, after)."""
        unknown = set(options) - set(EnqueueOptions.__dataclass_fields__)
        if unknown:
            allowed = ", ".join(EnqueueOptions.__dataclass_fields__)
            raise InvalidJobOptions(f"using() got unknown option(s) {sorted(unknown)}; use {allowed}.")
        merged = {k: v for k, v in vars(self.options).items() if v is not None}
        if "run_at" in options:
            merged.pop("delay", None)
        if "delay" in options:
            merged.pop("run_at", None)
        if options.get("after") is not None:
            options = {**options, "after": upstream_ids(options["after"])}
        merged.update(options)
        return replace(self, options=EnqueueOptions(**merged))

    # The job of an async def function has the coroutine's result: the first overload says so.
    @overload
    def enqueue(
        self: JobDefinition[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs
    ) -> Job[T]: ...
    @overload
    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]: ...

    def enqueue(self, *args: Any, **kwargs: Any) -> Job[Any]:
        """Write a job row in the current transaction and return it."""
        # The sanctioned lazy call up the layers, as Django's Task.get_backend(): enqueueing
        # imports the registry (and the models), so a definition reaches it only when called.
        from .enqueueing import enqueue

        return enqueue(self, *args, **kwargs)

    @overload
    def enqueue_many(
        self: JobDefinition[P, Coroutine[Any, Any, T]], calls: Iterable[Call], *, after: Iterable[Any] | None = None
    ) -> list[Job[T]]: ...
    @overload
    def enqueue_many(self, calls: Iterable[Call], *, after: Iterable[Any] | None = None) -> list[Job[R]]: ...

    def enqueue_many(self, calls: Iterable[Call], *, after: Iterable[Any] | None = None) -> list[Job[Any]]:
        """Enqueue one job per item (a dict of keyword arguments, or a list of positional ones);
        with ``after``, each of them waits on those jobs (as ``using(after=...)``)."""
        from .enqueueing import enqueue_many  # the same up-call as enqueue() above

        return enqueue_many(self, calls, after=after)


class JobOptions(TypedDict, total=False):
    """The keyword options of ``@job(...)``, for type checkers (job() documents them)."""

    name: str | None
    queue: str | None
    priority: int
    max_attempts: int | None
    timeout: float | timedelta | None
    backoff: Backoff | None
    dont_retry: Iterable[type[BaseException]]
    cron: str | None
    concurrency: int | None
    concurrency_key: str | Callable[..., str] | None
    rate: str | tuple[int, timedelta] | None
    rate_key: str | Callable[..., str] | None
    sequence_key: str | Callable[..., str] | None
    sequence_on_dead: str


@overload
def job(func: Callable[P, R], /, **options: Unpack[JobOptions]) -> JobDefinition[P, R]: ...
@overload
def job(
    func: None = None, /, **options: Unpack[JobOptions]
) -> Callable[[Callable[P, R]], JobDefinition[P, R]]: ...


def job(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str | None = None,
    priority: int = 0,
    max_attempts: int | None = None,
    timeout: float | timedelta | None = None,
    backoff: Backoff | None = None,
    dont_retry: Iterable[type[BaseException]] = (),
    cron: str | None = None,
    concurrency: int | None = None,
    concurrency_key: str | Callable[..., str] | None = None,
    rate: str | tuple[int, timedelta] | None = None,
    rate_key: str | Callable[..., str] | None = None,
    sequence_key: str | Callable[..., str] | None = None,
    sequence_on_dead: str = "block",
) -> JobDefinition[..., Any] | Callable[[Callable[..., Any]], JobDefinition[..., Any]]:
    """Register a function as a job: ``@job`` or ``@job(queue="emails", max_attempts=5, timeout=30)``.

    ``dont_retry`` lists exception classes that end the job as dead on the first failure.
    ``cron="5 0 * * *"`` also declares a schedule, named like the job, that runs it without
    arguments on that rhythm in ``settings.TIME_ZONE`` (see docs/reference/schedules.md).
    ``concurrency``, ``rate`` and ``sequence_key`` (with their keys) limit how many run at once,
    how often they start, and run them one at a time in order (see docs/how-to/limits.md).
    An ``async def`` function runs on an event loop in the worker's child.
    """

    def decorate(f: Callable[..., Any]) -> JobDefinition[..., Any]:
        if not callable(f):
            raise InvalidJobOptions(f"@job decorates a function, not {f!r}.")
        t = _check_timeout(timeout)
        if max_attempts is not None:
            _check_max_attempts(max_attempts)
        _check_priority(priority)
        _check_queue(queue)
        job_name = f"{f.__module__}.{f.__name__}" if name is None else name
        problem = _text_problem("the job name", job_name, NAME_MAX_LENGTH)
        if problem:
            hint = " Give it a shorter one with @job(name=...)." if name is None else ""
            raise InvalidJobOptions(f"@job on {f.__qualname__}: {problem}.{hint}")
        exc_classes = tuple(dont_retry)
        for cls in exc_classes:
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise InvalidJobOptions(f"dont_retry takes exception classes, not {cls!r}.")
        _check_return_annotation(f)
        expression = _check_cron(f, cron)
        flow = _check_flow(f, concurrency, concurrency_key, rate, rate_key, sequence_key, sequence_on_dead)
        definition = JobDefinition(
            func=f,
            name=job_name,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            timeout=t,
            backoff=backoff,
            dont_retry=exc_classes,
            cron=expression,
            **flow,
        )
        registry.register(definition)
        return definition

    if func is not None:
        return decorate(func)
    return decorate


def _check_flow(
    f: Callable[..., Any], concurrency: object, concurrency_key: object, rate: object, rate_key: object,
    sequence_key: object, sequence_on_dead: object,
) -> dict[str, Any]:
    """Check @job's flow-control options against the function; return them as JobDefinition fields."""
    where = f"@job on {f.__qualname__}"
    signature = inspect.signature(f)
    flow: dict[str, Any] = {}
    if concurrency is not None:
        flow["concurrency"] = check_concurrency(concurrency, f"{where}: concurrency")
    if rate is not None:
        flow["rate"] = parse_rate(rate, f"{where}: rate")
    # A key counts against a limit: each needs its own.
    for option, key, limit, needs in (
        ("concurrency_key", concurrency_key, concurrency, "concurrency=N (how many at once per key)"),
        ("rate_key", rate_key, rate, 'rate="N/m" (how many starts per key)'),
    ):
        if key is not None:
            if limit is None:
                raise InvalidJobOptions(f"{where}: {option} needs {needs}.")
            flow[option] = key_template(option, key, signature, f.__qualname__)
    if sequence_key is not None:
        flow["sequence_key"] = key_template("sequence_key", sequence_key, signature, f.__qualname__)
    if sequence_on_dead not in ("block", "continue"):
        raise InvalidJobOptions(
            f'{where}: sequence_on_dead must be "block" (the default) or "continue", not {sequence_on_dead!r}.'
        )
    if sequence_on_dead != "block":
        if sequence_key is None:
            raise InvalidJobOptions(f"{where}: sequence_on_dead applies only with a sequence_key.")
        flow["sequence_on_dead"] = sequence_on_dead
    return flow


# Return types whose values JSON can't hold as they are. A tuple is stored as a list, but a job
# annotated to return one would find a list in its result: @job refuses the annotation too. A
# Django Tasks task may declare one: that framework defines a task's tuple result as a list.
_NOT_JSON_TYPES: tuple[type, ...] = (
    tuple, set, frozenset, bytes, bytearray, memoryview, complex, date, time, timedelta, Decimal, UUID,
)


def _not_json(annotation: Any, refused: tuple[type, ...]) -> str | None:
    """The part of a return annotation JSON can't hold (``tuple``, ``list[datetime]``), or None."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return next((p for p in (_not_json(a, refused) for a in args) if p), None)
    if isinstance(origin, type):
        if issubclass(origin, refused):
            return repr(annotation)
        if issubclass(origin, dict) and args and isinstance(args[0], type) and not issubclass(args[0], str):
            return f"{annotation!r} (JSON object keys are strings)"
        return next((p for p in (_not_json(a, refused) for a in args) if p), None)
    if isinstance(annotation, type) and issubclass(annotation, refused):
        return annotation.__qualname__
    return None  # Any, None, TypedDicts, type variables, unresolved names: nothing sure to say


def _check_return_annotation(f: Callable[..., Any]) -> None:
    """Refuse a function whose return annotation says it returns what JSON can't hold."""
    try:
        # Resolves the strings of ``from __future__ import annotations``.
        annotation = typing.get_type_hints(f).get("return")
    except Exception:  # noqa: BLE001 - e.g. a name imported only under TYPE_CHECKING: nothing to check
        return
    task = hasattr(f, "django_task")  # set by django_jobs.backend on the function a task runs
    refused = tuple(t for t in _NOT_JSON_TYPES if t is not tuple) if task else _NOT_JSON_TYPES
    problem = _not_json(annotation, refused)
    if problem:
        raise InvalidJobOptions(
            f"@job on {f.__qualname__}: its return annotation says it returns {problem}, which JSON "
            f"can't hold. A job's return value is stored as JSON: return plain JSON types (str, "
            f"int, float, bool, None, list, dict with str keys), e.g. a list instead of a tuple "
            f"or value.isoformat() for a datetime, and annotate the function so."
        )


def _check_cron(f: Callable[..., Any], cron: str | None) -> str | None:
    """Return ``cron`` normalised, refusing a bad expression or a function that needs arguments."""
    if cron is None:
        return None
    # Deferred: cron.py imports croniter and cron-descriptor, which only cron jobs need.
    from . import cron as crontab

    if not isinstance(cron, str):
        raise InvalidJobOptions(f"@job(cron=…) on {f.__qualname__} takes a string, not {cron!r}.")
    try:
        expression = crontab.parse(cron)
    except InvalidCron as exc:
        raise InvalidJobOptions(f"@job(cron=…) on {f.__qualname__}: {exc}") from None
    try:
        inspect.signature(f).bind()
    except TypeError:
        raise InvalidJobOptions(
            f"@job(cron={expression!r}) runs {f.__qualname__} without arguments, but its signature "
            f"is {f.__name__}{inspect.signature(f)}. Give its parameters defaults, or declare the "
            f'schedule with its arguments in DJANGO_JOBS["SCHEDULES"] instead.'
        ) from None
    return expression


def resolve(target: str | JobDefinition[..., Any] | Callable[..., Any]) -> JobDefinition[..., Any]:
    """Turn a registered name, a JobDefinition or a decorated function into its JobDefinition."""
    if isinstance(target, JobDefinition):
        return target
    if isinstance(target, str):
        return registry.lookup(target)
    if callable(target):
        for definition in registry:
            if definition.func is target:
                return definition
        raise JobNotRegistered(
            f"{getattr(target, '__qualname__', target)!r} is not a registered job; decorate it "
            f"with @job first."
        )
    raise JobNotRegistered(f"Can't enqueue {target!r}: pass a job name or a @job function.")


def autodiscover() -> None:
    """Import the ``jobs`` module of every installed app so their @job functions register, their
    ``tasks`` module when TASKS uses django-jobs' backend (``@task`` registers them), and the
    modules ``DJANGO_JOBS["IMPORTS"]`` lists."""
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("jobs")
    if _tasks_use_jobs_backend():
        autodiscover_modules("tasks")
    import_modules(jobs_settings.IMPORTS)


def import_modules(modules: object) -> None:
    """Import the modules ``DJANGO_JOBS["IMPORTS"]`` lists, saying which one failed and why."""
    from django.core.exceptions import ImproperlyConfigured

    if not isinstance(modules, (list, tuple)):
        return  # checks.py reports it (django_jobs.E003)
    for module in modules:
        if not isinstance(module, str):
            continue  # idem
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f'DJANGO_JOBS["IMPORTS"] lists {module!r}, which can\'t be imported: {exc}. Give the '
                f"dotted path of a module (\"shop.billing.tasks\"), not of a function or a file."
            ) from exc


_TASKS_BACKEND = "django_jobs.backend.JobsBackend"


def _tasks_use_jobs_backend() -> bool:
    # Only then: a project's tasks.py may belong to another task library, not ours to import.
    from django.conf import settings
    from django.utils.module_loading import import_string

    for params in (getattr(settings, "TASKS", None) or {}).values():
        path = params.get("BACKEND") if isinstance(params, dict) else None
        if path == _TASKS_BACKEND:
            return True
        try:
            backend = import_string(str(path))
        except ImportError:
            continue
        bases = getattr(backend, "__mro__", ())
        if any(f"{c.__module__}.{c.__qualname__}" == _TASKS_BACKEND for c in bases):
            return True
    return False
