"""The cron scheduler: every worker runs it as a service; the database makes each tick fire once.

There is no leader. Each pass locks one due schedule row at a time with ``SELECT … FOR UPDATE
SKIP LOCKED``, enqueues the job(s) for its due ticks and moves ``next_run_at`` past ``now`` in the
same transaction. A worker that comes second either skips the locked row or, once the first one
committed, finds ``next_run_at`` in the future (PostgreSQL re-checks the WHERE clause against the
row it locks). Behind that, a unique constraint on (schedule, scheduled_for) in the job table
refuses a second job for a tick that was already enqueued, e.g. when an edit made on a machine
whose clock is behind moved ``next_run_at`` back onto a tick that fired.

The queries are ORM calls kept here rather than raw SQL in db/: each touches one small
table and the ORM spells the lock (``select_for_update(skip_locked=True)``) on every backend we
support (SQLite ignores it and serialises writers instead).

Schedules declared in code (``@job(cron=…)`` and ``DJANGO_JOBS["SCHEDULES"]``) are owned by the
code: workers sync them into the table when they start, overwriting what they declare; the admin
may only enable, disable or run them now. See docs/reference/schedules.md.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Min

from . import cron
from .conf import jobs_settings
from .db import inserts
from .enqueueing import build_job
from .exceptions import InvalidCron, InvalidJobArguments, InvalidPayload, InvalidSchedule, JobsError
from .log import log_event
from .models import Job, Schedule, default_timezone
from .payload import validate_arguments
from .registry import JobDefinition, registry
from .signals import job_enqueued

#: Schedules one pass fires at most; the service runs again at once when more are due.
PASS_LIMIT = 100
#: The longest the service sleeps: an edit or another worker may make a schedule due sooner.
MAX_WAIT = 1.0


# -- firing ---------------------------------------------------------------------------------------


def ticks_to_fire(schedule: Schedule, now: datetime) -> list[datetime]:
    """The ticks of ``schedule`` to enqueue a job for at ``now``, oldest first, per ``catch_up``.

    Every tick from ``next_run_at`` up to ``now`` is due. ``skip`` keeps those at most
    ``SCHEDULE_MISFIRE_GRACE`` seconds late; ``once`` keeps only the latest; ``all`` keeps the
    latest ``SCHEDULE_CATCH_UP_MAX``.
    """
    if schedule.next_run_at is None or schedule.next_run_at > now:
        return []
    since = schedule.next_run_at
    limit = int(jobs_settings.SCHEDULE_CATCH_UP_MAX)
    if schedule.catch_up == Schedule.CatchUp.SKIP:
        since = max(since, now - timedelta(seconds=float(jobs_settings.SCHEDULE_MISFIRE_GRACE)))
    elif schedule.catch_up == Schedule.CatchUp.ONCE:
        limit = 1
    return cron.latest_times(schedule.cron, schedule.timezone, since=since, until=now, limit=limit)


def _definition(schedule: Schedule) -> JobDefinition:
    definition = registry.lookup(schedule.job_name)
    options: dict[str, Any] = {}
    if schedule.queue:
        options["queue"] = schedule.queue
    if schedule.priority is not None:
        options["priority"] = schedule.priority
    return definition.using(**options) if options else definition


def _build(schedule: Schedule, definition: JobDefinition, now: datetime, tick: datetime | None) -> Job:
    job = build_job(definition, schedule.args, schedule.kwargs)
    job.schedule_id = schedule.pk
    job.scheduled_for = tick
    job.run_at = job.created_at = now
    return job


def fire_due(using: str, now: datetime, worker_id: str = "") -> list[Job]:
    """Enqueue the jobs of every schedule due at ``now``; return them.

    Only schedules whose job this process has registered are considered: during a rolling deploy
    a worker running older code leaves a new job's schedule to the workers that know it. A
    schedule that fails to fire is recorded as failed (``last_error``, a ``schedule_failed`` log
    line) and moved to its next tick; the others still fire.
    """
    names = registry.names()
    fired: list[Job] = []
    for _ in range(PASS_LIMIT):
        with transaction.atomic(using=using):
            schedule = (
                Schedule.objects.using(using)
                # SKIP LOCKED: another worker is firing this row right now; take the next one.
                .select_for_update(skip_locked=True)
                .filter(enabled=True, next_run_at__lte=now, job_name__in=names)
                .order_by("next_run_at", "id")
                .first()
            )
            if schedule is None:
                break
            try:
                # A savepoint: whatever _fire did is undone if it raises, and the row lock and
                # this transaction stay usable to record the failure.
                with transaction.atomic(using=using):
                    fired.extend(_fire(using, schedule, now, worker_id))
            except _CONNECTION_LOST:
                raise  # nothing can be recorded; the worker reconnects and the tick stays due
            except Exception as exc:  # noqa: BLE001 - one broken schedule must not stop the others
                _failed(using, schedule, now, exc, worker_id)
    return fired


#: Errors that mean the connection is gone rather than that this schedule is broken.
_CONNECTION_LOST = (OperationalError, InterfaceError)


def describe_error(exc: BaseException) -> str:
    """``exc`` as text PostgreSQL can store: class and message, without NUL or lone surrogates."""
    message = str(exc).strip()
    if isinstance(exc, JobsError) and message:
        text = message  # our own errors say what is wrong and how to fix it
    else:
        text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _failed(using: str, schedule: Schedule, now: datetime, exc: Exception, worker_id: str) -> None:
    """Record why ``schedule`` enqueued nothing, and move it to its next tick (no hot loop)."""
    error = describe_error(exc)
    try:
        next_run = schedule.next_tick_after(now)
    except Exception:  # noqa: BLE001 - a cron that can't be read: park the schedule
        next_run = None
    Schedule.objects.using(using).filter(pk=schedule.pk).update(next_run_at=next_run, last_error=error)
    log_event(
        "schedule_failed", logging.ERROR, schedule=schedule.name, error=error,
        next_run=next_run.isoformat() if next_run else "none", worker=worker_id,
    )


def _fire(using: str, schedule: Schedule, now: datetime, worker_id: str) -> list[Job]:
    """Enqueue the due ticks of a locked schedule and move it to its next tick."""
    due_since = schedule.next_run_at
    assert due_since is not None
    rows = Schedule.objects.using(using).filter(pk=schedule.pk)
    try:
        ticks = ticks_to_fire(schedule, now)
        next_run = schedule.next_tick_after(now)
    except InvalidCron as exc:
        # Only a row written around clean() gets here; park it (no next run) and say why.
        rows.update(next_run_at=None, last_error=str(exc))
        log_event("schedule_failed", logging.ERROR, schedule=schedule.name, error=str(exc), worker=worker_id)
        return []
    if not ticks or ticks[0] > due_since:
        log_event(
            "schedule_missed", logging.WARNING, schedule=schedule.name, policy=schedule.catch_up,
            since=due_since.isoformat(), until=(ticks[0] if ticks else now).isoformat(), worker=worker_id,
        )
    jobs: list[Job] = []
    error = ""
    definition = _definition(schedule)
    for tick in ticks:
        try:
            job = _build(schedule, definition, now, tick)
        except (InvalidJobArguments, InvalidPayload) as exc:
            # The code changed under the schedule: say so on it rather than retrying each second.
            error = str(exc)
            log_event("schedule_failed", logging.ERROR, schedule=schedule.name, error=error, worker=worker_id)
            break
        inserted = False
        try:
            # A savepoint per tick, so a conflict or a failure leaves the ticks already enqueued
            # and the rest of this transaction usable. job_enqueued is sent inside it: a receiver
            # that raises undoes this tick's insert, and the tick counts as failed, not fired.
            with transaction.atomic(using=using):
                inserts.insert_jobs([job], using)
                inserted = True
                job_enqueued.send(sender=Job, job=job)
        except _CONNECTION_LOST:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on the schedule; the others still fire
            if isinstance(exc, IntegrityError) and not inserted:
                # The unique (schedule, scheduled_for) constraint: this tick was enqueued already.
                log_event("schedule_tick_taken", schedule=schedule.name, tick=tick.isoformat(), worker=worker_id)
                continue
            error = describe_error(exc)
            log_event(
                "schedule_failed", logging.ERROR, schedule=schedule.name, tick=tick.isoformat(),
                error=error, worker=worker_id,
            )
            break
        jobs.append(job)
        log_event(
            "schedule_fired", schedule=schedule.name, job=job.pk, name=job.name, tick=tick.isoformat(),
            late=f"{(now - tick).total_seconds():.3f}s", worker=worker_id,
        )
    updates: dict[str, Any] = {"next_run_at": next_run, "last_error": error}
    if jobs:
        updates.update(last_run_at=now, last_job=jobs[-1])
    rows.update(**updates)
    return jobs


def run_now(schedule: Schedule, now: datetime) -> Job:
    """Enqueue ``schedule``'s job at once, outside its rhythm (no tick: ``scheduled_for`` is empty)."""
    using = jobs_settings.DATABASE
    job = _build(schedule, _definition(schedule), now, None)
    with transaction.atomic(using=using):
        inserts.insert_jobs([job], using)
        Schedule.objects.using(using).filter(pk=schedule.pk).update(last_run_at=now, last_job=job)
        job_enqueued.send(sender=Job, job=job)
    schedule.last_run_at, schedule.last_job = now, job
    log_event("schedule_run_now", schedule=schedule.name, job=job.pk, name=job.name)
    return job


def seconds_until_due(using: str, now: datetime) -> float:
    """Seconds until the earliest ``next_run_at`` this process can fire, at most ``MAX_WAIT``."""
    earliest = (
        Schedule.objects.using(using)
        .filter(enabled=True, job_name__in=registry.names())
        .aggregate(at=Min("next_run_at"))["at"]
    )
    if earliest is None:
        return MAX_WAIT
    return min(MAX_WAIT, max(0.0, (earliest - now).total_seconds()))


# -- schedules declared in code -------------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """A schedule declared in code: the fields the code owns."""

    name: str
    job_name: str
    cron: str
    timezone: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = ""
    priority: int | None = None
    catch_up: str = Schedule.CatchUp.ONCE.value
    # Only used when the row is created: afterwards enabling and disabling belong to operators.
    enabled: bool = True

    def fields(self) -> dict[str, Any]:
        """The columns the code owns, as model field values."""
        return {
            "job_name": self.job_name,
            "cron": self.cron,
            "timezone": self.timezone,
            "args": self.args,
            "kwargs": self.kwargs,
            "queue": self.queue,
            "priority": self.priority,
            "catch_up": self.catch_up,
        }


#: The keys a DJANGO_JOBS["SCHEDULES"] entry may have (job and cron are required).
SETTING_KEYS = ("job", "cron", "args", "kwargs", "timezone", "queue", "priority", "catch_up", "enabled")


def parse_declaration(name: object, spec: object) -> Declared:
    """Turn one ``DJANGO_JOBS["SCHEDULES"]`` entry into a Declared, or raise saying what's wrong.

    Raises InvalidSchedule (shape), InvalidCron (cron or timezone), JobNotRegistered,
    InvalidJobArguments or InvalidPayload (job and arguments).
    """
    where = f'DJANGO_JOBS["SCHEDULES"][{name!r}]'
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidSchedule(f"{where}: a schedule name is a non-empty string of at most 200 characters.")
    if not isinstance(spec, dict):
        raise InvalidSchedule(
            f'{where} is {type(spec).__name__}; write a dict such as {{"job": "app.jobs.report", '
            f'"cron": "5 0 * * *"}}.'
        )
    for key in spec:
        if key not in SETTING_KEYS:
            close = difflib.get_close_matches(str(key), SETTING_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(SETTING_KEYS)}."
            raise InvalidSchedule(f"{where} has an unknown key {key!r}; {hint}")
    for key in ("job", "cron"):
        if not isinstance(spec.get(key), str):
            raise InvalidSchedule(f"{where} needs {key!r} (a string).")
    args, kwargs = spec.get("args", []), spec.get("kwargs", {})
    if not isinstance(args, list):
        raise InvalidSchedule(f"{where}['args'] must be a list of positional arguments.")
    if not isinstance(kwargs, dict):
        raise InvalidSchedule(f"{where}['kwargs'] must be a dict of keyword arguments.")
    queue, priority = spec.get("queue") or "", spec.get("priority")
    if not isinstance(queue, str):
        raise InvalidSchedule(f"{where}['queue'] must be a queue name (a string).")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise InvalidSchedule(f"{where}['priority'] must be a whole number or None.")
    catch_up = spec.get("catch_up", Schedule.CatchUp.ONCE.value)
    if catch_up not in Schedule.CatchUp.values:
        raise InvalidSchedule(f"{where}['catch_up'] is {catch_up!r}; use one of {', '.join(Schedule.CatchUp.values)}.")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidSchedule(f"{where}['enabled'] must be True or False.")
    timezone = spec.get("timezone") or default_timezone()
    try:
        expression = cron.parse(spec["cron"])
        cron.zone(timezone)
    except InvalidCron as exc:
        raise InvalidCron(f"{where}: {exc}") from None
    definition = registry.lookup(spec["job"])
    validate_arguments(definition, args, kwargs)
    return Declared(
        name=name, job_name=definition.name, cron=expression, timezone=timezone, args=args,
        kwargs=kwargs, queue=queue, priority=priority, catch_up=catch_up, enabled=enabled,
    )


def declared_schedules() -> list[Declared]:
    """Every schedule the code declares, by name; raise on the first bad declaration."""
    declared: dict[str, Declared] = {}
    for definition in registry:
        if definition.cron:
            declared[definition.name] = Declared(
                name=definition.name, job_name=definition.name, cron=definition.cron,
                timezone=default_timezone(),
            )
    entries = jobs_settings.SCHEDULES or {}
    if not isinstance(entries, dict):
        raise InvalidSchedule(
            f'DJANGO_JOBS["SCHEDULES"] must be a dict of name -> schedule, not {type(entries).__name__}.'
        )
    for name, spec in entries.items():
        if name in declared:
            raise InvalidSchedule(
                f'DJANGO_JOBS["SCHEDULES"] declares {name!r}, which @job(cron=…) on the job of that '
                f"name already declares; rename one of them."
            )
        declared[name] = parse_declaration(name, spec)
    return [declared[name] for name in sorted(declared)]


def sync_declared(using: str, now: datetime) -> dict[str, int]:
    """Make the table match the schedules declared in code; return counts of what changed.

    A declared schedule is created (``source=code``) or has the fields the code owns overwritten;
    its ``enabled`` flag, once created, is the operators'. A row of the same name made in the
    admin is taken over. Code schedules no longer declared are deleted, once a worker firing one
    (on older code, during a rolling deploy) has committed. Safe when every worker runs it at once:
    rows are locked in name order and a lost creation race is ignored.
    """
    declared = declared_schedules()
    counts = {"created": 0, "updated": 0, "deleted": 0}
    with transaction.atomic(using=using):
        for item in declared:
            row = Schedule.objects.using(using).select_for_update().filter(name=item.name).first()
            if row is None:
                row = Schedule(name=item.name, source=Schedule.Source.CODE, enabled=item.enabled, **item.fields())
                try:
                    with transaction.atomic(using=using):
                        row.save(using=using, now=now)
                except IntegrityError:
                    continue  # another worker created it a moment ago, from the same code
                counts["created"] += 1
                continue
            changed = [name for name, value in item.fields().items() if getattr(row, name) != value]
            if row.source != Schedule.Source.CODE:
                log_event("schedule_adopted", schedule=row.name, note="declared in code; code now owns it")
                changed.append("source")
            if changed:
                for name, value in item.fields().items():
                    setattr(row, name, value)
                row.source = Schedule.Source.CODE
                row.save(using=using, now=now, update_fields=[*changed, "updated_at"])
                counts["updated"] += 1
        # Locked first (a worker on older code may be firing one during a rolling deploy: this
        # waits for its commit), so that the delete's SET_NULL of the jobs naming them, a later
        # statement, sees the jobs that firing added.
        stale = list(
            Schedule.objects.using(using).select_for_update().filter(source=Schedule.Source.CODE)
            .exclude(name__in=[d.name for d in declared]).order_by("name").values_list("pk", flat=True)
        )
        if stale:
            counts["deleted"], _ = Schedule.objects.using(using).filter(pk__in=stale).delete()
    if any(counts.values()):
        log_event("schedules_synced", **counts)
    return counts
