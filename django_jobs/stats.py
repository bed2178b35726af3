"""The numbers behind the admin's overview page and the metrics endpoint, in a few indexed queries.

The statements are in db/stats.py; here they become per-queue, per-worker and stored-job figures.
The finished bulk of the table (often millions of rows) is never counted: its size per status
comes from the planner's estimate once the table is large (see ``stored_finished``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .conf import jobs_settings
from .db import gates, series
from .db import maintenance as db_maintenance
from .db import stats as db_stats
from .exceptions import JobNotRegistered
from .flow import KeyTemplate, Limits, Rate
from .models import FINISHED_STATUSES, Job, JobStatus, KnownName, Limit, Pause, Schedule, Worker
from .readable import format_age
from .registry import registry

#: How far back "recently finished" looks.
RECENT = timedelta(hours=1)
#: While the planner expects fewer finished rows than this, they are counted exactly (tens of
#: milliseconds); beyond it, estimated: counting millions of rows takes seconds.
EXACT_COUNT_MAX_ROWS = 50_000


@dataclass
class QueueStats:
    """One queue's jobs: waiting and running ones by status, and the last hour's outcomes."""

    queue: str
    #: Jobs waiting on upstream jobs (workflows): not claimable until they are queued.
    waiting: int = 0
    queued: int = 0
    retrying: int = 0
    running: int = 0
    #: Queued or retrying jobs whose run_at has passed: a worker could claim them now.
    ready: int = 0
    #: run_at of the oldest ready job; ``now - oldest_ready_at`` is the queue's lag.
    oldest_ready_at: datetime | None = None
    #: Jobs that finished within ``RECENT``, by status (succeeded, stopped, dead).
    recent: dict[str, int] = field(default_factory=dict)
    paused: bool = False

    def lag(self, now: datetime) -> timedelta:
        """How long the oldest ready job has waited to be claimed (zero when none waits)."""
        if self.oldest_ready_at is None:
            return timedelta(0)
        return max(timedelta(0), now - self.oldest_ready_at)

    @property
    def recent_failed(self) -> int:
        return self.recent.get(JobStatus.DEAD.value, 0)

    @property
    def recent_finished(self) -> int:
        return sum(self.recent.values())


@dataclass
class StoredFinished:
    """How many finished jobs the table holds, by status; ``estimated`` names the statuses whose
    count is the planner's estimate rather than a count."""

    counts: dict[str, int]
    estimated: frozenset[str] = frozenset()

    @property
    def exact(self) -> bool:
        return not self.estimated


@dataclass
class WorkerStats:
    """A live worker row and the jobs it is running (id, name, started_at), oldest first."""

    worker: Worker
    heartbeat_age: timedelta
    running: list[dict[str, Any]]

    @property
    def silent(self) -> bool:
        """No heartbeat for longer than RESCUE_AFTER: other workers will rescue its jobs."""
        return self.heartbeat_age.total_seconds() > float(jobs_settings.RESCUE_AFTER)


def _datetime(value: Any) -> datetime | None:
    # SQLite hands back text for an aggregate over a datetime column.
    if value is None or isinstance(value, datetime):
        return value
    parsed = parse_datetime(str(value))
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def known_queues() -> set[str]:
    """Queues worth a row even when empty: the default one and those registered jobs name."""
    queues = {str(jobs_settings.DEFAULT_QUEUE)}
    queues.update(d.queue for d in registry if d.queue)
    return queues


def queue_stats(
    using: str,
    *,
    now: datetime,
    extra_queues: Iterable[str] = (),
    recent: bool = True,
) -> list[QueueStats]:
    """Per queue: counts by active status, ready jobs and lag, and (``recent``) the last hour's
    outcomes."""
    stats: dict[str, QueueStats] = {}

    def get(queue: str) -> QueueStats:
        if queue not in stats:
            stats[queue] = QueueStats(queue)
        return stats[queue]

    for queue in [*known_queues(), *extra_queues]:
        get(queue)
    for queue, status, count, ready, oldest in db_stats.active_by_queue(using, now=now):
        row = get(queue)
        setattr(row, status, getattr(row, status) + int(count))
        row.ready += int(ready or 0)
        oldest = _datetime(oldest)
        if oldest is not None and (row.oldest_ready_at is None or oldest < row.oldest_ready_at):
            row.oldest_ready_at = oldest
    if recent:
        for queue, status, count in _recent_by_queue(using, since=now - RECENT, now=now):
            get(queue).recent[status] = count
    paused = set(
        Pause.objects.using(using).filter(kind=Pause.Kind.QUEUE).values_list("value", flat=True)
    )
    for queue in paused:
        get(queue).paused = True
    return sorted(stats.values(), key=lambda s: s.queue)


def _recent_by_queue(using: str, *, since: datetime, now: datetime) -> list[tuple[str, str, int]]:
    """(queue, status, count) of the jobs that finished since ``since``.

    The whole minutes the charts recorded (db/series.py) are read from their rows; only the
    minutes around them are counted in the job table. A site finishing 100 jobs a second has
    360,000 in the last hour, a range scan of ~200 ms on every load of the overview; the minute
    rows are 60 per queue. The minutes used are those from the window's first whole minute on
    that were all recorded (each has its all-queues row), so a gap in the recording (no worker
    ran) is counted in the table, as everything is where nothing was recorded. They count each
    job that finished in a minute as it was then: an operator's retry of a job that died since
    doesn't take it back, as it does in the table.
    """
    first = series.floor_minute(since)
    if first < since:
        first += timedelta(minutes=1)
    end = first
    totals: Counter[tuple[str, str]] = Counter()
    rows = series.minutes(using, since=first, until=series.floor_minute(now))
    recorded = [bucket for bucket, queue, *_ in rows if queue == ""]
    for bucket in recorded:
        if bucket != end:
            break
        end += timedelta(minutes=1)
    if end == first:
        found = db_stats.finished_since_by_queue(using, since=since)
    else:
        for bucket, queue, *counts in rows:
            if queue and bucket < end:
                for status, n in zip(series.OUTCOMES, counts):
                    totals[(queue, status)] += int(n)
        found = db_stats.finished_around_by_queue(using, since=since, first=first, end=end)
    for queue, status, n in found:  # (FINISHED_AROUND_BY_QUEUE may give a queue and status twice)
        totals[(queue, status)] += int(n)
    return [(queue, status, n) for (queue, status), n in totals.items() if n]


def stored_finished(using: str) -> StoredFinished:
    """How many succeeded, stopped and dead jobs the table holds: exact while there are few."""
    statuses = [s.value for s in FINISHED_STATUSES]
    if connections[using].vendor == "postgresql":
        if db_stats.estimated_rows(using, db_stats.IS_FINISHED) > EXACT_COUNT_MAX_ROWS:
            counts = {
                s.value: _round(db_stats.estimated_rows(using, db_stats.status_is(s)))
                for s in FINISHED_STATUSES
            }
            estimated = set(statuses)
            # Operators want the dead count exact, and it stays small unless something is badly
            # wrong: counted on its own index up to the cap, estimated like the others beyond.
            dead = db_stats.dead_count(using, cap=EXACT_COUNT_MAX_ROWS)
            if dead < EXACT_COUNT_MAX_ROWS:
                counts[JobStatus.DEAD.value] = dead
                estimated.discard(JobStatus.DEAD.value)
            return StoredFinished(counts, frozenset(estimated))
    counts = dict.fromkeys(statuses, 0)
    counts.update({status: int(n) for status, n in db_stats.finished_by_status(using)})
    return StoredFinished(counts)


def _round(estimate: int) -> int:
    # Two significant digits: the planner's sample doesn't support more (and 1 means "few").
    if estimate < 100:
        return estimate
    digits = len(str(estimate)) - 2
    return round(estimate, -digits)


def worker_stats(using: str, *, now: datetime) -> list[WorkerStats]:
    """Every worker row with its heartbeat's age and the jobs it says it is running."""
    workers = list(Worker.objects.using(using).order_by("hostname", "worker_id"))
    ids = {int(i) for w in workers for i in (w.running or []) if str(i).isdigit()}
    jobs: dict[int, dict[str, Any]] = {
        row["id"]: dict(row)
        for row in Job.objects.using(using)
        .filter(pk__in=ids)
        .values("id", "name", "started_at", "queue")
    }
    result = []
    for w in workers:
        running: list[dict[str, Any]] = []
        for job_id in w.running or []:
            row = jobs.get(int(job_id)) if str(job_id).isdigit() else None
            running.append(row or {"id": job_id, "name": None, "started_at": None, "queue": None})
        result.append(WorkerStats(w, max(timedelta(0), now - w.last_heartbeat), running))
    return result


@dataclass
class UnknownName:
    """A job name whose ready jobs a worker set aside because its code doesn't register it."""

    name: str
    #: Its ready jobs set aside, and since when the oldest has waited so.
    jobs: int
    parked_since: datetime
    #: Live workers whose code registers it (they put its jobs back and run them).
    known_by: list[str]
    #: When a worker last said it knows the name (None: none ever did, or not recently recorded).
    last_known: datetime | None

    def ends_dead_at(self, grace: float) -> datetime | None:
        """When its oldest job ends dead with JobNotRegistered if no worker that knows it comes
        (None while a live worker knows it)."""
        if self.known_by:
            return None
        since = max(self.parked_since, self.last_known or self.parked_since)
        return since + timedelta(seconds=grace)


def live_workers(using: str, *, now: datetime) -> list[Worker]:
    """The workers with a heartbeat within RESCUE_AFTER (rescue counts the others as gone)."""
    fresh_after = now - timedelta(seconds=float(jobs_settings.RESCUE_AFTER))
    return list(Worker.objects.using(using).filter(last_heartbeat__gte=fresh_after))


def unknown_names(using: str, *, now: datetime) -> list[UnknownName]:
    """The names of jobs set aside by a worker that didn't know them, by name."""
    parked = db_maintenance.parked_by_name(using)
    if not parked:
        return []
    live = live_workers(using, now=now)
    seen = dict(KnownName.objects.using(using).filter(name__in=[n for n, _, _ in parked])
                .values_list("name", "seen_at"))
    return [
        UnknownName(name, jobs, since, sorted(w.worker_id for w in live if w.knows(name)), seen.get(name))
        for name, jobs, since in sorted(parked)
    ]


def paused(using: str) -> tuple[list[Pause], list[Pause]]:
    """The pauses in force: (queues, job names), each sorted by value."""
    pauses = list(Pause.objects.using(using).order_by("value"))
    return (
        [p for p in pauses if p.kind == Pause.Kind.QUEUE],
        [p for p in pauses if p.kind == Pause.Kind.NAME],
    )


@dataclass
class ScheduleProblem:
    """An enabled schedule that doesn't fire as it should, and why."""

    schedule: Schedule
    #: ``unregistered``: no job of its job name is registered, so no worker fires it;
    #: ``failing``: its last due tick enqueued nothing (``message`` is its ``last_error``);
    #: ``missed``: no job of it succeeded within its grace of a tick (``Schedule.missed_tick``).
    problem: str
    message: str


def missed_message(schedule: Schedule, tick: datetime, last_success: datetime | None, now: datetime) -> str:
    """What the admin and the overview say about a missed schedule."""
    since = (
        f"its last success was {format_age(now - last_success)} ago"
        if last_success else "no job of it has succeeded yet"
    )
    return (
        f"Missed: no job succeeded within {format_age(schedule.effective_grace)} of its tick at "
        f"{timezone.localtime(tick):%Y-%m-%d %H:%M %Z}; {since}."
    )


def unregistered_message(schedule: Schedule) -> str:
    """What the admin, the overview and check W101 say about a schedule for an unknown job."""
    try:
        registry.lookup(schedule.job_name)
    except JobNotRegistered as exc:
        return f"It never fires: {exc}"
    return ""


def watched_schedules(using: str) -> list[Schedule]:
    """The enabled schedules, by name, each with its ``latest_success`` (the missed check's input)."""
    return list(Schedule.objects.using(using).filter(enabled=True).with_last_success().order_by("name"))


def schedule_problems(
    using: str, now: datetime | None = None, schedules: list[Schedule] | None = None
) -> list[ScheduleProblem]:
    """Enabled schedules whose job isn't registered, whose last due tick failed, or that missed a
    run (as of ``now``), by name.

    "Registered" means in this process's code: the web process and the workers load the same
    apps, so a name unknown here is unknown to them too (during a rolling deploy, briefly, the
    old code may not know a new job yet). ``schedules``: watched_schedules(), when the caller
    has them already.
    """
    now = now or timezone.now()
    # Every enabled schedule: whether one missed its run depends on the clock, not on a column.
    rows = watched_schedules(using) if schedules is None else schedules
    problems = []
    for schedule in rows:
        if schedule.job_name not in registry:
            problems.append(ScheduleProblem(schedule, "unregistered", unregistered_message(schedule)))
        if schedule.last_error:
            problems.append(ScheduleProblem(schedule, "failing", schedule.last_error))
        latest = getattr(schedule, "latest_success", None)
        tick = schedule.missed_tick(now, latest)
        if tick is not None:
            problems.append(ScheduleProblem(schedule, "missed", missed_message(schedule, tick, latest, now)))
    return problems


# -- flow control: the limits in effect and how much of each is used -----------------------------


def effective_limits(using: str) -> tuple[Limits, list[Limit]]:
    """The limits every worker applies (code, DJANGO_JOBS["QUEUES"], then the operators' rows over
    them), and those rows."""
    return gates.limits_in_effect(using), list(Limit.objects.using(using).order_by("kind", "value"))


def template_text(template: KeyTemplate | None) -> str | None:
    """A key template as the admin shows it: the format string, or the callable's name."""
    if template is None:
        return None
    source = template.source
    return source if isinstance(source, str) else getattr(source, "__qualname__", repr(source))


@dataclass
class KeyUsage:
    """A limit per key: how many keys have jobs ready to start, and how many of those are at
    their limit (their jobs are held)."""

    waiting: int = 0
    at_limit: int = 0


#: How people are told who set a limit (``LimitUsage.*_source``).
LIMIT_SOURCES = {"code": "code", "settings": "settings", "operator": "an operator"}


@dataclass
class LimitUsage:
    """A limited queue or job name: the limits in effect, who set each, and how much is used.

    Each ``*_source`` is ``"code"`` (``@job``), ``"settings"`` (``DJANGO_JOBS["QUEUES"]``) or
    ``"operator"`` (a ``Limit`` row, set in the admin). A job name's limits may hold per key (its
    ``concurrency_key`` or ``rate_key`` template, in ``*_per_key``): then ``keys`` says how the
    keys fare, and ``rate_starts`` is None (each key has its own window).
    """

    scope: str  # "queue" or "name"
    target: str
    concurrency: int | None = None
    concurrency_source: str = ""
    concurrency_per_key: str | None = None
    rate: Rate | None = None
    rate_source: str = ""
    rate_per_key: str | None = None
    #: Jobs running now: in the queue, or of the job name (over all its keys).
    running: int = 0
    #: Starts within the rate's window (its last ``period`` seconds); None without a rate, or
    #: with a rate per key.
    rate_starts: int | None = None
    #: "concurrency" and "rate", when that limit holds per key.
    keys: dict[str, KeyUsage] = field(default_factory=dict)
    #: Why an operator set their limit, when one did.
    note: str = ""

    @property
    def start_key(self) -> str:
        """The key the rate gate logs this target's starts under (flow.Gate.start_key)."""
        return f"queue:{self.target}" if self.scope == "queue" else self.target

    @property
    def full(self) -> bool:
        """Whether it holds jobs back now: at its concurrency or rate, or with keys at theirs."""
        at_concurrency = (
            self.concurrency is not None
            and self.running >= self.concurrency
            and not self.concurrency_per_key
        )
        at_rate = (
            self.rate_starts is not None and self.rate is not None
            and self.rate_starts >= self.rate.count
        )
        return at_concurrency or at_rate or any(usage.at_limit for usage in self.keys.values())

    def in_words(self) -> dict[str, str]:
        """Its use of each limit and who set them, as the overview and ``jobs stats`` say it:
        ``concurrency``, ``rate`` and ``keys`` ("" when it has none) and ``source``."""
        concurrency = rate = ""
        if self.concurrency is not None:
            per_key = f" per {self.concurrency_per_key}" if self.concurrency_per_key else ""
            concurrency = f"{self.running:,} running, at most {self.concurrency:,}{per_key}"
        if self.rate is not None:
            if self.rate_per_key:
                rate = f"at most {self.rate} per {self.rate_per_key}"
            else:
                rate = f"{self.rate_starts or 0:,} started of {self.rate}"
        keys = "; ".join(
            f"{kind}: {usage.waiting:,} with jobs waiting, {usage.at_limit:,} at the limit"
            for kind, usage in self.keys.items()
        )
        sources = {LIMIT_SOURCES[s] for s in (self.concurrency_source, self.rate_source) if s}
        return {
            "concurrency": concurrency,
            "rate": rate,
            "keys": keys,
            "source": " and ".join(sorted(sources)),
        }


def limit_usage(using: str, *, now: datetime) -> list[LimitUsage]:
    """Every limited queue, then every limited job name, with its usage now."""
    limits, rows = effective_limits(using)
    if not limits:
        return []
    operator = {(r.kind, r.value): r for r in rows}
    usages = []
    for scope, targets, concurrency, rate, default_source in (
        ("queue", limits.limited_queues, limits.queue_concurrency, limits.queue_rate, "settings"),
        ("name", limits.limited_names, limits.concurrency, limits.rate, "code"),
    ):
        for target in targets:
            row = operator.get((scope, target))
            usage = LimitUsage(scope, target, concurrency.get(target), rate=rate.get(target))
            usage.note = row.note if row is not None else ""
            if usage.concurrency is not None:
                by_operator = row is not None and row.concurrency is not None
                usage.concurrency_source = "operator" if by_operator else default_source
            if usage.rate is not None:
                usage.rate_source = "operator" if row is not None and row.rate else default_source
            definition = registry.get(target) if scope == "name" else None
            if definition is not None and usage.concurrency is not None:
                usage.concurrency_per_key = template_text(definition.concurrency_key)
            if definition is not None and usage.rate is not None:
                usage.rate_per_key = template_text(definition.rate_key)
            usages.append(usage)
    _count_usage(using, now, usages)
    return usages


def _count_usage(using: str, now: datetime, usages: list[LimitUsage]) -> None:
    if connections[using].vendor != "postgresql":
        return  # the statements use PostgreSQL's arrays; SQLite is for development only
    running_by_queue: dict[str, int] = {}
    running_by_name: dict[str, int] = {}
    for queue, name, count in db_stats.running_by_queue_and_name(using):
        running_by_queue[queue] = running_by_queue.get(queue, 0) + int(count)
        running_by_name[name] = running_by_name.get(name, 0) + int(count)
    windows: dict[str, datetime] = {}
    rules: dict[str, tuple[int | None, datetime | None, int | None]] = {}
    for usage in usages:
        running = running_by_queue if usage.scope == "queue" else running_by_name
        usage.running = running.get(usage.target, 0)
        since = now - timedelta(seconds=usage.rate.period) if usage.rate is not None else None
        if since is not None and usage.rate_per_key is None:
            windows[usage.start_key] = since
        if usage.concurrency_per_key is not None or usage.rate_per_key is not None:
            rules[usage.target] = (
                usage.concurrency if usage.concurrency_per_key is not None else None,
                since if usage.rate_per_key is not None else None,
                usage.rate.count if usage.rate is not None and usage.rate_per_key is not None else None,
            )
    starts = db_stats.starts_in_windows(using, windows)
    keyed = {(name, kind): KeyUsage(waiting, at_limit)
             for name, kind, waiting, at_limit in db_stats.keys_at_limit(using, now=now, rules=rules)}
    for usage in usages:
        if usage.start_key in windows:
            usage.rate_starts = starts.get(usage.start_key, 0)
        if usage.scope == "name":
            for kind, per_key in (("concurrency", usage.concurrency_per_key), ("rate", usage.rate_per_key)):
                if per_key is not None:
                    usage.keys[kind] = keyed.get((usage.target, kind), KeyUsage())
