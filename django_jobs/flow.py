"""Flow control as pure decisions: rates, key templates, and which held-back jobs may start now.

Nothing here touches the database. ``db/gates.py`` reads what is running and what started
recently (under locks that serialise the gates involved), asks ``admit()`` which candidates may
start, and claims exactly those. Keeping the decision here means the rules (a concurrency limit, a
sliding-window rate, a sequence's head) are written once and tested without a database.

A job is *held* while a gate is closed: it stays ``queued`` and spends no attempt. Held is not a
status; ``explain()`` says what holds a job, for diagnose() and the admin.
"""

from __future__ import annotations

import inspect
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .exceptions import InvalidJobOptions

# -- rates ------------------------------------------------------------------------------------------

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smhd])\s*$")
#: The longest period a rate may have: rate starts older than this are never counted again.
MAX_PERIOD = timedelta(days=7)
RATE_FORMS = '"N/s", "N/m", "N/h", "N/d" (for example "30/m"), or (N, timedelta(...))'


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` starts in any window of ``period`` seconds."""

    count: int
    period: float

    def __str__(self) -> str:
        for unit, seconds in _UNITS.items():
            if self.period == seconds:
                return f"{self.count}/{unit}"
        return f"{self.count}/{self.period:g}s"


def parse_rate(value: object, what: str = "rate") -> Rate:
    """Return ``value`` ("30/m", (30, timedelta(minutes=1)) or a Rate) as a Rate, or raise
    InvalidJobOptions naming the accepted forms."""
    if isinstance(value, Rate):
        rate = value
    elif isinstance(value, str):
        match = _RATE.match(value)
        if not match:
            raise InvalidJobOptions(f"{what}={value!r} isn't a rate; write it as {RATE_FORMS}.")
        rate = Rate(int(match.group(1)), _UNITS[match.group(2)])
    elif isinstance(value, tuple) and len(value) == 2:
        count, period = value
        if not (isinstance(count, int) and not isinstance(count, bool)) or not isinstance(period, timedelta):
            raise InvalidJobOptions(f"{what}={value!r} isn't a rate; write it as {RATE_FORMS}.")
        rate = Rate(count, period.total_seconds())
    else:
        raise InvalidJobOptions(f"{what}={value!r} isn't a rate; write it as {RATE_FORMS}.")
    if rate.count < 1:
        raise InvalidJobOptions(f"{what}={value!r} allows no start at all; the count must be at least 1.")
    if not rate.period > 0:
        raise InvalidJobOptions(f"{what}={value!r}: the period must be positive.")
    if rate.period > MAX_PERIOD.total_seconds():
        raise InvalidJobOptions(f"{what}={value!r}: the period can be at most 7 days.")
    return rate


def check_concurrency(value: object, what: str = "concurrency") -> int:
    """Return ``value`` as a concurrency limit (an int of at least 1), or raise saying why not."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidJobOptions(f"{what} must be an int (jobs at once), not {type(value).__name__} {value!r}.")
    if value < 1:
        raise InvalidJobOptions(
            f"{what}={value} would never run a job; give at least 1 (to stop a job from running, "
            f"pause it instead)."
        )
    return value


# -- keys -------------------------------------------------------------------------------------------

#: Keys are stored in varchar(255) columns.
KEY_MAX_LENGTH = 255


@dataclass(frozen=True)
class KeyTemplate:
    """A ``str.format`` template over a job's arguments, or a callable taking them by name."""

    what: str
    source: str | Callable[..., Any]

    def render(self, arguments: Mapping[str, Any]) -> str:
        """The key for these bound arguments (defaults applied); raises InvalidJobOptions when the
        result can't be stored."""
        try:
            if callable(self.source):
                key = self.source(**arguments)
            else:
                key = self.source.format(**arguments)
        except Exception as exc:  # noqa: BLE001 - a user's callable or attribute access failed
            raise InvalidJobOptions(f"{self.what} could not be computed: {type(exc).__name__}: {exc}") from None
        if not isinstance(key, str) or not key:
            raise InvalidJobOptions(f"{self.what} must give a non-empty string, not {key!r}.")
        if len(key) > KEY_MAX_LENGTH:
            raise InvalidJobOptions(
                f"{self.what} gave a key of {len(key):,} characters, over the limit of {KEY_MAX_LENGTH}: "
                f"{key[:40]!r}…"
            )
        if "\x00" in key:
            raise InvalidJobOptions(f"{self.what} gave {key!r}, which contains a NUL character.")
        try:
            key.encode()
        except UnicodeEncodeError:
            raise InvalidJobOptions(f"{self.what} gave {key!r}, which contains a lone surrogate.") from None
        return key


def key_template(what: str, value: object, signature: inspect.Signature, func_name: str) -> KeyTemplate:
    """Check a key template against the job's signature at decoration time and return it."""
    parameters = signature.parameters
    if callable(value):
        try:
            inspect.signature(value)
        except (TypeError, ValueError):
            pass
        return KeyTemplate(f"{what} of {func_name}", value)
    if not isinstance(value, str) or not value:
        raise InvalidJobOptions(
            f"{what} on {func_name} must be a str.format template over its arguments "
            f'(e.g. "account:{{account_id}}") or a callable, not {value!r}.'
        )
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        raise InvalidJobOptions(f"{what}={value!r} on {func_name} isn't a valid format string: {exc}.") from None
    for name in fields:
        head = re.split(r"[.\[]", name, maxsplit=1)[0]
        if head == "" or head.isdigit():
            raise InvalidJobOptions(
                f"{what}={value!r} on {func_name} uses a positional field {{{name}}}; name the "
                f"parameter instead, one of: {', '.join(parameters) or '(it has none)'}."
            )
        if head not in parameters:
            raise InvalidJobOptions(
                f"{what}={value!r} on {func_name} names {{{head}}}, which isn't one of its "
                f"parameters ({', '.join(parameters) or 'it has none'})."
            )
    return KeyTemplate(f"{what}={value!r} of {func_name}", value)


# -- gates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The limits in effect: code's values with the operators' over them, by job name and queue.

    ``concurrency`` and ``rate`` are per key of the named job (its ``concurrency_key`` or
    ``rate_key``, or the job name when it declares none).
    """

    concurrency: Mapping[str, int] = field(default_factory=dict)
    rate: Mapping[str, Rate] = field(default_factory=dict)
    queue_concurrency: Mapping[str, int] = field(default_factory=dict)
    queue_rate: Mapping[str, Rate] = field(default_factory=dict)
    #: Job names whose sequences go on past a dead job (sequence_on_dead="continue").
    sequence_continue: frozenset[str] = frozenset()

    @property
    def limited_queues(self) -> list[str]:
        return sorted(set(self.queue_concurrency) | set(self.queue_rate))

    @property
    def limited_names(self) -> list[str]:
        return sorted(set(self.concurrency) | set(self.rate))

    def most_per_key(self, free: int) -> int:
        """The most jobs one key may start in one claim: how many of a key's jobs a claim reads.

        Rate-held jobs are claimed only for the ``free`` children, so a rate counts for no more.
        """
        counts = [*self.concurrency.values(), *self.queue_concurrency.values()]
        if self.rate or self.queue_rate:
            counts.append(free)
        return max(counts, default=1)

    def __bool__(self) -> bool:
        return bool(self.concurrency or self.rate or self.queue_concurrency or self.queue_rate)


def merge_limits(
    code: Limits, queues: Mapping[str, Mapping[str, Any]], operator: Iterable[tuple[str, str, int | None, str]]
) -> Limits:
    """The limits in effect: ``code`` (from @job), ``queues`` (DJANGO_JOBS["QUEUES"], already
    checked) and the operators' (kind, value, concurrency, rate) rows, which replace the value
    code gives the same queue or job name."""
    concurrency, rate = dict(code.concurrency), dict(code.rate)
    queue_concurrency = {q: int(o["concurrency"]) for q, o in queues.items() if o.get("concurrency") is not None}
    queue_rate = {q: parse_rate(o["rate"]) for q, o in queues.items() if o.get("rate")}
    for kind, value, limit_concurrency, limit_rate in operator:
        by_concurrency, by_rate = (queue_concurrency, queue_rate) if kind == "queue" else (concurrency, rate)
        if limit_concurrency is not None:
            by_concurrency[value] = limit_concurrency
        if limit_rate:
            by_rate[value] = parse_rate(limit_rate)
    return Limits(concurrency, rate, queue_concurrency, queue_rate, code.sequence_continue)


@dataclass(slots=True)
class Candidate:
    """A ready job a gate may hold back, as the claim's first read found it."""

    id: int
    name: str
    queue: str
    priority: int
    run_at: datetime
    concurrency_key: str | None = None
    rate_key: str | None = None
    sequence_key: str | None = None


@dataclass(frozen=True, slots=True)
class Gate:
    """One limit a job must pass: its kind, the key counted, and the limit there."""

    kind: str  # "concurrency", "rate", "queue-concurrency", "queue-rate", "sequence"
    key: str
    concurrency: int = 1
    rate: Rate | None = None

    @property
    def lock_name(self) -> str:
        """What the claim locks for this gate (rates and concurrency of one key share nothing)."""
        return f"django_jobs:{self.kind}:{self.key}"

    @property
    def start_key(self) -> str:
        """The key a rate gate's starts are recorded under."""
        return f"queue:{self.key}" if self.kind == "queue-rate" else self.key


def gates_of(candidate: Candidate, limits: Limits) -> list[Gate]:
    """The gates ``candidate`` must pass under ``limits``."""
    gates: list[Gate] = []
    name, queue = candidate.name, candidate.queue
    concurrency = limits.concurrency.get(name)
    if concurrency is not None:
        gates.append(Gate("concurrency", candidate.concurrency_key or name, concurrency=concurrency))
    rate = limits.rate.get(name)
    if rate is not None:
        gates.append(Gate("rate", candidate.rate_key or name, rate=rate))
    if queue in limits.queue_concurrency:
        gates.append(Gate("queue-concurrency", queue, concurrency=limits.queue_concurrency[queue]))
    if queue in limits.queue_rate:
        gates.append(Gate("queue-rate", queue, rate=limits.queue_rate[queue]))
    if candidate.sequence_key is not None:
        gates.append(Gate("sequence", candidate.sequence_key))
    return gates


#: The gate kinds that count running jobs: their slots are what fair_share() divides.
SLOT_KINDS = ("concurrency", "queue-concurrency", "sequence")


def fair_share(gates: Iterable[Gate], children: int, fleet: int) -> int:
    """How many slots of ``gates`` a worker with ``children`` may hold: its part of their
    slots as its children are of the ``fleet``'s (every live worker's), rounded up.

    A slot a worker claims ahead of its children is one no other worker can use meanwhile, and
    the worker that ends a job passes its slot to the key's next job (claims._HANDOFF). Without
    a share, the first of two workers to claim 100 keys limited to one each took 66 of them and
    kept them to the end, running two thirds of the jobs while the other went idle. With 2
    workers of 2 children over those 100 keys, each may hold 50: ``fair_share(gates, 2, 4)``.
    A rate has no slots (its jobs are claimed only for idle children), so it counts for none.
    """
    slots = sum(gate.concurrency for gate in set(gates) if gate.kind in SLOT_KINDS)
    return -(-slots * children // max(fleet, children, 1))


@dataclass
class Usage:
    """What the gates' counters read, in the claim's transaction after its locks were taken."""

    #: Running job ids per concurrency gate (kind, key).
    running: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    #: Per rate start key: (starts in the window, the oldest of them).
    starts: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    #: Per sequence key: its head (the first job not finished, or dead and blocking) as
    #: (id, status), when it has one.
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: Per sequence key: a running job of it, if any.
    sequence_running: dict[str, int] = field(default_factory=dict)
    #: Children of every live worker that may run these jobs (None: not read).
    fleet: int | None = None


@dataclass
class Admission:
    """What admit() decided: the jobs to claim now, and why the others wait."""

    ids: list[int] = field(default_factory=list)
    #: Job id → why it is held (one line, as diagnose() shows it).
    held: dict[int, str] = field(default_factory=dict)
    #: The earliest time a rate-held job may start (None: no job waits on a rate).
    next_start: datetime | None = None
    #: A job a rate let through was passed over only because ``rate_want`` was reached: there
    #: is more to start as soon as a child is free.
    rate_bound: bool = False


def admit(
    candidates: Sequence[Candidate], limits: Limits, usage: Usage, now: datetime, want: int,
    rate_want: int | None = None, slot_want: int | None = None,
) -> Admission:
    """Pick, in claim order, up to ``want`` candidates whose every gate is open, counting each
    admitted job against its gates as it goes. Candidates are due already; ``now`` is the clock
    the rate windows were read with. At most ``rate_want`` (None: ``want``) of those admitted may
    be held by a rate: a worker claims those only for children free to start them at once. At
    most ``slot_want`` (None: ``want``) may take a slot (SLOT_KINDS): the worker's fair share
    (fair_share); the rest are left to other workers."""
    ordered = sorted(candidates, key=lambda c: (-c.priority, c.run_at, c.id))
    running = {gate: len(ids) for gate, ids in usage.running.items()}
    starts = {key: count for key, (count, _) in usage.starts.items()}
    sequences_taken: set[str] = set()
    decision = Admission()
    rated = slotted = 0
    for candidate in ordered:
        if len(decision.ids) >= want:
            break
        gates = gates_of(candidate, limits)
        has_rate = any(gate.rate is not None for gate in gates)
        if has_rate and rate_want is not None and rated >= rate_want:
            # (Whether the rate would let it through isn't known here; the next claim finds out.)
            decision.rate_bound = True
            continue
        takes_slot = any(gate.kind in SLOT_KINDS for gate in gates)
        if takes_slot and slot_want is not None and slotted >= slot_want:
            continue
        reason = None
        for gate in gates:
            reason = _closed(gate, candidate, running, starts, sequences_taken, usage, now, decision)
            if reason:
                break
        if reason:
            decision.held[candidate.id] = reason
            continue
        decision.ids.append(candidate.id)
        rated += has_rate
        slotted += takes_slot
        for gate in gates:
            if gate.kind in ("concurrency", "queue-concurrency"):
                running[(gate.kind, gate.key)] = running.get((gate.kind, gate.key), 0) + 1
            elif gate.rate is not None:
                starts[gate.start_key] = starts.get(gate.start_key, 0) + 1
            elif gate.kind == "sequence":
                sequences_taken.add(gate.key)
    return decision


def _closed(
    gate: Gate, candidate: Candidate, running: dict[tuple[str, str], int], starts: dict[str, int],
    sequences_taken: set[str], usage: Usage, now: datetime, decision: Admission,
) -> str | None:
    """Why ``gate`` holds ``candidate`` now, or None when it lets it through."""
    if gate.kind in ("concurrency", "queue-concurrency"):
        count = running.get((gate.kind, gate.key), 0)
        if count < gate.concurrency:
            return None
        holders = usage.running.get((gate.kind, gate.key), [])
        what = "queue" if gate.kind == "queue-concurrency" else "key"
        return held_by_concurrency(what, gate.key, count, gate.concurrency, holders)
    if gate.rate is not None:
        count = starts.get(gate.start_key, 0)
        if count < gate.rate.count:
            return None
        _, oldest = usage.starts.get(gate.start_key, (0, None))
        next_start = (oldest + timedelta(seconds=gate.rate.period)) if oldest else now
        if decision.next_start is None or next_start < decision.next_start:
            decision.next_start = next_start
        return held_by_rate(gate, (next_start - now).total_seconds(), candidate.name)
    # A sequence: only its head runs, and only while no job of it is running.
    key = gate.key
    if key in sequences_taken or key in usage.sequence_running:
        blocker = usage.sequence_running.get(key)
        return f"sequence `{key}` is running job #{blocker}" if blocker else f"sequence `{key}` is busy"
    head = usage.heads.get(key)
    if head is None or head[0] == candidate.id:
        return None
    head_id, status = head
    if status == "dead":
        return f"sequence `{key}` is blocked by dead job #{head_id}"
    return f"sequence `{key}` runs job #{head_id} ({status}) first"


def held_by_concurrency(what: str, key: str, count: int, limit: int, holders: Iterable[int]) -> str:
    """The one line that says a concurrency limit holds a job."""
    ids = ", ".join(f"#{i}" for i in list(holders)[:5])
    label = f"the queue `{key}`'s concurrency limit" if what == "queue" else f"the concurrency limit `{key}`"
    return f"held by {label}: {count} of {limit} running" + (f" (job {ids})" if ids else "")


def held_by_rate(gate: Gate, wait: float, name: str = "") -> str:
    """The one line that says a rate holds a job: "rate `30/m` reached: next start in 12 s"."""
    if gate.kind == "queue-rate":
        where = f" of the queue `{gate.key}`"
    elif gate.key != name:
        where = f" for `{gate.key}`"
    else:
        where = ""
    return f"rate `{gate.rate}`{where} reached: next start in {max(wait, 0.0):.0f} s"
