"""The tables: jobs, live workers, pauses and cron schedules.

State changes of a job happen only through the methods here (and the SQL in db/ that they
call); nothing else writes ``Job.status``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Generic, TypeVar

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.timezone import now as _now

from . import cron
from .conf import jobs_settings
from .db import channel
from .db.connection import retrying_deadlocks
from .exceptions import (
    InvalidCron,
    InvalidJobArguments,
    InvalidJobOptions,
    InvalidPayload,
    JobNotCommitted,
    JobNotRegistered,
)
from .flow import check_concurrency, parse_rate
from .payload import validate_arguments
from .registry import queue_problem, registry


class JobStatus(models.TextChoices):
    """Where a job is in its life. See docs/explanation/lifecycle.md for the diagram."""

    # Enqueued with using(after=[...]): queued once its last upstream job succeeds. Outside the
    # claim's index, so no claim ever looks at it.
    WAITING = "waiting", "Waiting"
    # Waiting to run once run_at has passed.
    QUEUED = "queued", "Queued"
    # Claimed by a worker; an attempt is in progress.
    RUNNING = "running", "Running"
    # An attempt failed; the next one is due at run_at.
    RETRYING = "retrying", "Retrying"
    # Finished: the last attempt returned normally; its return value is in result.
    SUCCEEDED = "succeeded", "Succeeded"
    # Finished: stopped by an operator or by the job itself. Runs again only if retried.
    STOPPED = "stopped", "Stopped"
    # Finished: failed for good (attempts spent, a non-retryable error, or dead-lettered).
    DEAD = "dead", "Dead"


#: A worker may claim jobs in these states once run_at has passed.
READY_STATUSES = (JobStatus.QUEUED, JobStatus.RETRYING)
#: Jobs that will still run or are running: a unique_key of the default scope is unique among these.
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.RUNNING)
#: Outcomes: nothing runs these again unless an operator retries them.
FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.STOPPED, JobStatus.DEAD)


class UniqueWhile(models.TextChoices):
    """How long a job's ``unique_key`` keeps out other jobs with that key (``using(unique_while=…)``)."""

    # While the job is queued, retrying or running: one active job per key (the default).
    ACTIVE = "active", "Active"
    # Until the job first starts: one job not started yet per key, beside others that run.
    WAITING = "waiting", "Waiting"


#: The jobs that hold a unique_key against a new job of each scope: the predicates (with
#: ``unique_key IS NOT NULL``) of the two partial unique indexes that enforce it, and of the
#: lookups that find the holder. A job of the waiting scope holds its key until its first claim
#: sets ``started_at``, which nothing clears: so nothing a worker does to a started job (a retry,
#: ``Retry()``, a hand-back at shutdown) can collide with the job waiting after it.
KEY_HOLDERS = {
    UniqueWhile.ACTIVE: Q(status__in=ACTIVE_STATUSES, unique_while=UniqueWhile.ACTIVE),
    UniqueWhile.WAITING: Q(started_at__isnull=True, status=JobStatus.QUEUED, unique_while=UniqueWhile.WAITING),
}


#: A sequence waits on its jobs in these states (a dead one unless sequence_on_dead="continue").
SEQUENCE_STATUSES = (JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.RUNNING, JobStatus.DEAD)
#: Rows no flow-control gate holds, and rows held by a concurrency or rate key (not a sequence).
UNGATED = Q(concurrency_key__isnull=True, rate_key__isnull=True, sequence_key__isnull=True)
#: Rows a worker set aside because no job of that name is registered in its code (parked_at).
PARKED = Q(parked_at__isnull=False)
UNPARKED = Q(parked_at__isnull=True)
KEYED = Q(sequence_key__isnull=True) & (Q(concurrency_key__isnull=False) | Q(rate_key__isnull=False))

#: The statuses each operator transition applies to; the row and the queryset verbs share them.
RETRY_FROM = (JobStatus.DEAD, JobStatus.STOPPED, JobStatus.RETRYING)
STOP_FROM = (JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.RUNNING)
DEAD_LETTER_FROM = (JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.STOPPED)
#: Jobs that haven't started and end at once when stopped (a running one is asked to stop).
NOT_STARTED = (JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RETRYING)

#: Rows a queryset transition locks and changes per transaction.
TRANSITION_BATCH = 500


@dataclass
class Transitioned:
    """What a queryset transition did: the jobs it changed and those it skipped, by status.

    Statuses are those the jobs had when the transition looked at them (under a row lock).
    ``skipped`` may also count ``"stopping"`` (running jobs whose stop was already requested),
    ``"key_taken"`` (jobs not retried because another active job holds their ``unique_key``) and
    ``"upstream_failed"`` (jobs not retried because an upstream job of theirs is dead or stopped).
    """

    done: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    #: The jobs changed, id → name: what an audit trail logs (one entry per job acted on).
    changed: dict[int, str] = field(default_factory=dict)

    @property
    def done_count(self) -> int:
        return sum(self.done.values())

    @property
    def skipped_count(self) -> int:
        return sum(self.skipped.values())


def _wait_seconds(timeout: float | timedelta | None) -> float | None:
    """``wait(timeout=…)`` as seconds, refusing what isn't a number of seconds or a timedelta."""
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise ValueError(
            f"wait(timeout=…) takes seconds (a number, 0 or more) or a timedelta, not {timeout!r}."
        )
    return float(seconds)


class JobQuerySet(models.QuerySet["Job[Any]"]):
    def ready(self, now: datetime | None = None) -> JobQuerySet:
        """Jobs a worker could claim now."""
        return self.filter(status__in=READY_STATUSES, run_at__lte=now or timezone.now())

    def active(self) -> JobQuerySet:
        return self.filter(status__in=ACTIVE_STATUSES)

    def finished(self) -> JobQuerySet:
        return self.filter(status__in=FINISHED_STATUSES)

    # -- operator transitions, in bulk (Job.retry() and friends are these on one row) ------------

    def retry(self, now: datetime | None = None, *, by: str = "") -> Transitioned:
        """Queue the dead, stopped or retrying jobs among these to run now (see ``Job.retry``).

        ``by`` names the operator (the admin and ``manage.py jobs`` pass it): each job retried
        then gets a ``retried`` entry in its history saying who. Without it the history is as
        it was.
        """
        now = now or timezone.now()
        entry = _operator_entry("retried", now, by)

        def apply(rows: list[Job[Any]], result: Transitioned) -> None:
            rows = self._without_key_conflicts(rows, result)
            armed = _arm_downstream(self.db, [r.pk for r in rows])
            for row in rows:
                if row.pk in armed and armed[row.pk].status == JobStatus.STOPPED:
                    # An upstream job failed for good: retry that one (this one then waits again).
                    result.skipped["upstream_failed"] += 1
            rows = [r for r in rows if r.pk not in armed or armed[r.pk].status != JobStatus.STOPPED]
            by_name: dict[str, list[int]] = {}
            for row in rows:
                by_name.setdefault(row.name, []).append(row.pk)
            for name, ids in by_name.items():
                definition = registry.get(name)
                budget = definition.effective_max_attempts if definition else F("max_attempts")
                # A fresh set of attempts, and the backoff starts again from its first delay.
                self.model.objects.using(self.db).filter(pk__in=ids).update(
                    status=JobStatus.QUEUED,
                    run_at=now,
                    finished_at=None,
                    stop_requested_at=None,
                    max_attempts=F("attempts") + budget,
                    attempts_at_retry=F("attempts"),
                )
            _apply_armed(self.db, {pk: armed[pk] for pk in (r.pk for r in rows) if pk in armed})
            _rearm_stopped_by(self.db, [r.pk for r in rows])
            for row in rows:
                result.done[row.status] += 1
                result.changed[row.pk] = row.name
                row.history = [*row.history, entry]
            if by:
                self.model.objects.using(self.db).bulk_update(rows, ["history"])
            for queue in {row.queue for row in rows}:
                _notify(queue)

        return self._transition(
            RETRY_FROM, apply, extra_fields=("unique_key", "unique_while", "started_at", "history")
        )

    def stop(self, reason: str = "", now: datetime | None = None, *, by: str = "") -> Transitioned:
        """Stop these jobs: waiting ones end ``stopped`` at once, running ones are asked to stop.

        With ``by`` (the operator's name), a job stopped at once gets a ``stopped`` entry in its
        history saying who; a running one doesn't (its attempt's own entry, written by its
        worker, ends the history and says it was stopped).
        """
        now = now or timezone.now()
        entry = _operator_entry("stopped", now, by, reason)

        def apply(rows: list[Job[Any]], result: Transitioned) -> None:
            waiting = [r for r in rows if r.status in NOT_STARTED]
            running = [
                r.pk for r in rows if r.status == JobStatus.RUNNING and not r.stop_requested_at
            ]
            for row in rows:
                if row.status == JobStatus.RUNNING and row.stop_requested_at is not None:
                    result.skipped["stopping"] += 1
                else:
                    result.done[row.status] += 1
                    result.changed[row.pk] = row.name
            manager = self.model.objects.using(self.db)
            if waiting:
                for row in waiting:
                    row.status = JobStatus.STOPPED
                    row.finished_at = now
                    row.last_error = reason or "stopped before it ran"
                    if by:
                        row.history = [*row.history, entry]
                manager.bulk_update(waiting, ["status", "finished_at", "last_error", "history"])
                _cascade_stop(self.db, {r.pk: JobStatus.STOPPED.value for r in waiting}, now)
            if running:
                manager.filter(pk__in=running).update(stop_requested_at=now)
                _notify_control(CONTROL_STOP)

        return self._transition(STOP_FROM, apply, extra_fields=("history",))

    def dead_letter(self, note: str = "", now: datetime | None = None, *, by: str = "") -> Transitioned:
        """Move the queued, retrying and stopped jobs among these to ``dead``, noting why (and,
        in each job's history, who: ``by``)."""
        now = now or timezone.now()
        entry = _operator_entry("dead-lettered", now, by, note)
        error = f"dead-lettered by an operator: {note}" if note else "dead-lettered"

        def apply(rows: list[Job[Any]], result: Transitioned) -> None:
            for row in rows:
                result.done[row.status] += 1
                result.changed[row.pk] = row.name
                row.status = JobStatus.DEAD
                row.finished_at = now
                row.last_error = error
                row.history = [*row.history, entry]
            self.model.objects.using(self.db).bulk_update(
                rows, ["status", "finished_at", "last_error", "history"]
            )
            _cascade_stop(self.db, {row.pk: JobStatus.DEAD.value for row in rows}, now)

        return self._transition(DEAD_LETTER_FROM, apply, extra_fields=("history",))

    def _without_key_conflicts(self, rows: list[Job[Any]], result: Transitioned) -> list[Job[Any]]:
        """The rows that can be queued without breaking their unique_key's uniqueness.

        A job that would take its key (see KEY_HOLDERS) while another job holds it in the same
        scope, or one retried just before it, is skipped as ``key_taken``. A retrying job of the
        active scope holds its key already and keeps it; a started job of the waiting scope never
        takes its key again.
        """
        taking = [r for r in rows if _takes_key(r)]
        if not taking:
            return rows
        ids = [r.pk for r in rows]
        taken: set[tuple[str, str | None]] = set()
        for scope in {r.unique_while for r in taking}:
            held = (
                self.model.objects.using(self.db)
                .filter(KEY_HOLDERS[UniqueWhile(scope)], unique_key__in={r.unique_key for r in taking})
                .exclude(pk__in=ids)
                .values_list("unique_key", flat=True)
            )
            taken |= {(scope, key) for key in held}
        taken |= {
            (r.unique_while, r.unique_key) for r in rows
            if r.unique_key and r.unique_while == UniqueWhile.ACTIVE and r.status == JobStatus.RETRYING
        }
        kept = []
        for row in rows:
            if _takes_key(row):
                if (row.unique_while, row.unique_key) in taken:
                    result.skipped["key_taken"] += 1
                    continue
                taken.add((row.unique_while, row.unique_key))
            kept.append(row)
        return kept

    def _transition(
        self,
        allowed: Sequence[str],
        apply: Callable[[list[Job[Any]], Transitioned], None],
        extra_fields: Sequence[str] = (),
    ) -> Transitioned:
        """Walk these jobs by id in bounded batches; lock each batch and ``apply`` the change to
        the rows whose status allows it, counting the others as skipped.

        The lock makes the status read and the change one decision, so a report never counts a
        job as changed that a worker moved meanwhile; a batch at a time keeps the locks short
        and the memory bounded however many jobs match.
        """
        result = Transitioned()
        fields = ("id", "status", "name", "queue", "stop_requested_at", *extra_fields)
        ordered = self.order_by("pk")
        last = None
        while True:
            batch = ordered if last is None else ordered.filter(pk__gt=last)
            ids = list(batch.values_list("pk", flat=True)[:TRANSITION_BATCH])
            if not ids:
                return result
            last = ids[-1]
            # Again, with fresh reads, if PostgreSQL aborts it to break a deadlock (_locked_batch).
            batch_result = retrying_deadlocks(
                self.db, partial(self._locked_batch, ids, allowed, apply, fields)
            )
            result.done.update(batch_result.done)
            result.skipped.update(batch_result.skipped)
            result.changed.update(batch_result.changed)
            if len(ids) < TRANSITION_BATCH:
                return result

    def _locked_batch(
        self,
        ids: list[int],
        allowed: Sequence[str],
        apply: Callable[[list[Job[Any]], Transitioned], None],
        fields: Sequence[str],
    ) -> Transitioned:
        """Lock the rows of ``ids`` and ``apply`` the change to those whose status allows it; what
        it did. _transition runs it with retrying_deadlocks(), in a transaction of its own (or a
        savepoint inside the caller's).

        A worker's outcome write locks its jobs in id order and then their downstream jobs, which
        can come before some of them; this locks in id order. When each holds a row the other waits
        on, PostgreSQL aborts one transaction whole: the worker's runs again (db/claims.py), and
        so does this, with the rows read afresh, rather than fail the operator's action.
        """
        result = Transitioned()
        rows = list(
            self.model.objects.using(self.db)
            .select_for_update()
            .filter(pk__in=ids)
            .order_by("pk")
            .only(*fields)
        )
        todo = [r for r in rows if r.status in allowed]
        for row in rows:
            if row.status not in allowed:
                result.skipped[row.status] += 1
        if todo:
            apply(todo, result)
        return result


def _operator_entry(event: str, now: datetime, by: str, note: str = "") -> dict[str, Any]:
    """The history entry an operator's verb adds to each job it changes: what, when, who, why."""
    entry: dict[str, Any] = {"event": event, "at": now.isoformat(), "note": note}
    if by:
        entry["by"] = by
    return entry


# -- workflows: the operator verbs' side (the worker's is in its outcome write, db/claims.py) ------
#
# Each step is its own statement inside the verb's transaction, so each sees what the one before
# waited for: a job added downstream meanwhile (whose enqueue holds its upstream row) is seen by
# the next level's walk, and an outcome written meanwhile by the re-count.


def _cascade_stop(using: str, roots: dict[int, str], now: datetime) -> None:
    """Stop every job waiting downstream of ``roots`` (id → the status they ended with),
    transitively, each naming the root whose failure stopped it."""
    from .lifecycle import upstream_failed

    frontier = {pk: pk for pk in roots}
    while frontier:
        doomed: dict[int, int] = {}
        for up, down in Dependency.objects.using(using).filter(upstream_id__in=list(frontier)).values_list(
            "upstream_id", "downstream_id"
        ):
            doomed.setdefault(down, frontier[up])
        if not doomed:
            return
        stopped = set(
            Job.objects.using(using).select_for_update()
            .filter(pk__in=list(doomed), status=JobStatus.WAITING).values_list("pk", flat=True)
        )
        for root in {doomed[pk] for pk in stopped}:
            Job.objects.using(using).filter(pk__in=[pk for pk in stopped if doomed[pk] == root]).update(
                status=JobStatus.STOPPED, finished_at=now, stopped_by=root,
                last_error=upstream_failed(root, roots[root]),
            )
        frontier = {pk: doomed[pk] for pk in stopped}


def _arm_downstream(using: str, ids: list[int], rearming: frozenset[int] = frozenset()) -> dict[int, Any]:
    """Where each of these (locked) jobs that has upstream jobs would stand now (lifecycle.arm);
    upstream jobs in ``rearming`` count as waiting (they are being re-armed with these).

    First takes the lock of each of their upstream rows (bumping downstream_version): an outcome
    write of one of them in flight commits before the statuses are read, and one that starts
    meanwhile sees the bump and runs again after this transaction (see db/claims.py).
    """
    from .lifecycle import arm

    edges = list(Dependency.objects.using(using).filter(downstream_id__in=ids).values_list("downstream_id", "upstream_id"))
    if not edges:
        return {}
    upstream = {up for _, up in edges}
    jobs = Job.objects.using(using)
    jobs.filter(pk__in=upstream).update(downstream_version=F("downstream_version") + 1)
    statuses = dict(jobs.filter(pk__in=upstream).values_list("pk", "status"))
    statuses.update((pk, JobStatus.WAITING.value) for pk in rearming & upstream)
    by_job: dict[int, dict[int, str]] = {}
    for down, up in edges:
        seen = by_job.setdefault(down, {})
        if up in statuses:
            seen[up] = statuses[up]
    return {pk: arm(seen) for pk, seen in by_job.items()}


def _apply_armed(using: str, armed: dict[int, Any]) -> None:
    """Write what _arm_downstream() decided."""
    for decision in set(armed.values()):
        Job.objects.using(using).filter(pk__in=[pk for pk, d in armed.items() if d == decision]).update(
            status=decision.status, pending_upstream=decision.pending, stopped_by=decision.stopped_by,
            finished_at=None, last_error=decision.reason,
        )


def _rearm_stopped_by(using: str, retried: list[int]) -> None:
    """Re-arm the jobs that the failure of one of ``retried`` stopped, now it runs again."""
    stopped = list(
        Job.objects.using(using).select_for_update()
        .filter(stopped_by__in=retried, status=JobStatus.STOPPED).order_by("pk").values_list("pk", flat=True)
    )
    rearming = frozenset(stopped)
    for start in range(0, len(stopped), TRANSITION_BATCH):
        _apply_armed(using, _arm_downstream(using, stopped[start : start + TRANSITION_BATCH], rearming))


def _takes_key(row: Job[Any]) -> bool:
    """Whether queueing ``row`` (retrying it) makes it a holder of its unique_key it wasn't."""
    if not row.unique_key:
        return False
    if row.unique_while == UniqueWhile.WAITING:
        return row.started_at is None
    return bool(row.status != JobStatus.RETRYING)


#: What a job's function returns (for an async def, what its coroutine returns): Job[R].
R = TypeVar("R")


class Job(models.Model, Generic[R]):
    """One unit of background work and the record of every attempt at it.

    Generic over its function's return type, for type checkers: ``send_receipt.enqueue(1)``
    is a ``Job[str]`` when send_receipt returns a str, so its ``result`` is a ``str | None``.
    A job read from the database is a ``Job[Any]``.
    """

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=255, help_text="The registered job name.")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=100, default="default")
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts started so far.")
    max_attempts = models.PositiveIntegerField(default=3)
    # ``attempts`` when an operator last retried the job (0: never). The backoff counts the
    # attempts after it, so a retried job starts again from the shortest delay, while
    # ``attempts`` keeps counting up as the fencing token. A database default too, so processes
    # still running the code before this column (during a deploy) go on inserting jobs.
    attempts_at_retry = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Attempts started before the last operator retry."
    )
    timeout = models.FloatField(null=True, blank=True, help_text="Seconds an attempt may run.")
    run_at = models.DateTimeField(default=timezone.now, help_text="Not before this time.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The return value, as it comes back from JSON, once the job succeeded; None before.
    result: models.JSONField[Any, R | None] = models.JSONField(null=True, blank=True)
    unique_key = models.CharField(max_length=255, null=True, blank=True)
    # How long unique_key keeps out other jobs with that key: see UniqueWhile and the constraints.
    # A database default too, so that processes still running the code before this column
    # (during a deploy) can go on inserting jobs.
    unique_while = models.CharField(
        max_length=8, choices=UniqueWhile.choices, default=UniqueWhile.ACTIVE, db_default=UniqueWhile.ACTIVE
    )
    # Which worker holds the current attempt (a worker id), empty when none does.
    worker_id = models.CharField(max_length=255, blank=True, default="")
    # One entry per finished attempt: attempt, worker, started_at, finished_at, outcome, error.
    history = models.JSONField(default=list, blank=True)
    # First line of the last attempt's error, for lists and search.
    last_error = models.TextField(blank=True, default="")
    # Set when someone asked a running job to stop; the worker acts on it.
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    # What the job last reported of its progress: {"percent": 40, "message": "..."}.
    progress = models.JSONField(null=True, blank=True)
    schedule = models.ForeignKey(
        "django_jobs.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        help_text="The cron schedule that enqueued this job, if any.",
        # Indexed partially in Meta: most jobs have no schedule, and every index entry is paid
        # for on each enqueue.
        db_index=False,
    )
    # The cron tick this job was enqueued for; empty for jobs not fired by a schedule's rhythm
    # (including a schedule's "run now"). Unique per schedule: see the constraint below.
    scheduled_for = models.DateTimeField(
        null=True, blank=True, help_text="The schedule tick this job was enqueued for."
    )
    # Flow control (flow.py, db/gates.py), computed at enqueue time from @job's templates: the key
    # whose concurrency limit and rate the job counts against, and the sequence it runs in. A row
    # with any of them is claimed by the gated claim only, never by the plain one.
    concurrency_key = models.CharField(max_length=255, null=True, blank=True)
    rate_key = models.CharField(max_length=255, null=True, blank=True)
    sequence_key = models.CharField(max_length=255, null=True, blank=True)
    # When a worker that doesn't know this job's name claimed it and set it aside (a rolling
    # deploy: the enqueuing code is newer than that worker). A parked job is out of the claim's
    # index; workers that know the name claim it from django_jobs_parked_idx, and it ends dead
    # with JobNotRegistered only once no live worker has known the name for UNKNOWN_JOB_GRACE.
    parked_at = models.DateTimeField(null=True, blank=True)
    # Workflows (using(after=[...]), docs/how-to/workflows.md). Database defaults too, so that
    # processes still running the code before these columns (during a deploy) can insert jobs.
    # How many upstream jobs of a waiting job haven't succeeded yet: each success takes one off in
    # the statement that writes it, and the one that reaches 0 queues the job (db/claims.py).
    pending_upstream = models.PositiveIntegerField(default=0, db_default=0)
    # 0 for a job nothing waits on. Else bumped by every transaction that adds a downstream job or
    # re-arms one, under this row's lock: an outcome write that waited on that lock sees its value
    # change and runs again, with a snapshot that holds the new rows (db/claims.py, _FLOW).
    downstream_version = models.PositiveIntegerField(default=0, db_default=0)
    # The upstream job whose failure stopped this one (by a cascade); retrying it re-arms this one.
    # A plain id: pruning deletes rows with raw SQL, and the upstream may go first.
    stopped_by = models.BigIntegerField(null=True, blank=True)
    # The W3C trace context current when the job was enqueued (only with opentelemetry-api
    # installed and a span recording, else NULL): each attempt's span is its child, in the same
    # trace as the request that enqueued it (django_jobs/tracing.py, docs/how-to/tracing.md).
    traceparent = models.CharField(max_length=55, null=True, blank=True, editable=False)
    tracestate = models.TextField(null=True, blank=True, editable=False)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("retry_job", "Can retry jobs"),
            ("stop_job", "Can stop jobs"),
            ("deadletter_job", "Can dead-letter jobs"),
        ]
        indexes = [
            # The claim's index: only ready rows without flow-control keys are in it, so it stays
            # small however many finished (or held) rows pile up, and its order is the claim's
            # ORDER BY (see db/claims.py).
            models.Index(
                F("priority").desc(),
                "run_at",
                "id",
                name="django_jobs_ready_idx",
                condition=Q(status__in=READY_STATUSES) & UNGATED & UNPARKED,
            ),
            # Jobs set aside by workers that didn't know their name, by name: a worker that knows
            # one claims its jobs in claim order. Usually empty.
            models.Index(
                "name",
                F("priority").desc(),
                "run_at",
                "id",
                name="django_jobs_parked_idx",
                condition=Q(status__in=READY_STATUSES) & PARKED,
            ),
            # The gated claim's walk over concurrency and rate keys (db/gates.py): one probe per
            # distinct key, then that key's first jobs in claim order.
            models.Index(
                Coalesce("concurrency_key", "rate_key"),
                F("priority").desc(),
                "run_at",
                "id",
                name="django_jobs_keyed_idx",
                condition=Q(status__in=READY_STATUSES) & KEYED,
            ),
            # Sequences: the head of each (the first job not finished, or dead and blocking) is
            # the first entry under its key.
            models.Index(
                "sequence_key",
                "id",
                name="django_jobs_sequence_idx",
                condition=Q(sequence_key__isnull=False, status__in=SEQUENCE_STATUSES),
            ),
            # Rescue looks up running jobs by worker; few rows are ever running.
            models.Index(
                "worker_id",
                name="django_jobs_running_idx",
                condition=Q(status=JobStatus.RUNNING),
            ),
            # The admin links a schedule to its jobs; only scheduled jobs are in this index.
            models.Index(
                "schedule",
                name="django_jobs_schedule_idx",
                condition=Q(schedule__isnull=False),
            ),
            # A schedule's latest success (the missed-schedule check, the metrics): one probe at
            # the end of its entries. Only succeeded scheduled jobs are in it.
            models.Index(
                "schedule",
                "finished_at",
                name="django_jobs_sched_success_idx",
                condition=Q(schedule__isnull=False, status=JobStatus.SUCCEEDED),
            ),
            # The admin's dead-letter page groups dead jobs by name; only dead rows are in it, so
            # it doesn't read the (many) succeeded ones.
            models.Index(
                "name",
                "finished_at",
                name="django_jobs_dead_idx",
                condition=Q(status=JobStatus.DEAD),
            ),
            # Waiting jobs (workflows), counted by queue for the overview and the metrics.
            models.Index(
                "queue",
                name="django_jobs_waiting_idx",
                condition=Q(status=JobStatus.WAITING),
            ),
            # Re-arming finds the jobs a failed upstream job stopped.
            models.Index(
                "stopped_by",
                name="django_jobs_stopped_by_idx",
                condition=Q(stopped_by__isnull=False),
            ),
            # Pruning walks finished rows by age.
            models.Index(
                "finished_at",
                name="django_jobs_finished_idx",
                condition=Q(status__in=FINISHED_STATUSES),
            ),
        ]
        constraints = [
            # At most one holder per unique_key in each scope (KEY_HOLDERS): one active job of
            # the active scope, one job not started yet of the waiting scope. The database
            # enforces it, so concurrent enqueues can't race past each other; enqueue() turns the
            # conflict into "return the existing job" or "replace its arguments" (ON CONFLICT …
            # DO NOTHING or DO UPDATE in db/inserts.py). Partial on unique_key IS NOT NULL too,
            # so jobs without a key cost them nothing.
            models.UniqueConstraint(
                fields=["unique_key"],
                name="django_jobs_unique_key_active",
                condition=Q(unique_key__isnull=False) & KEY_HOLDERS[UniqueWhile.ACTIVE],
            ),
            models.UniqueConstraint(
                fields=["unique_key"],
                name="django_jobs_unique_key_waiting",
                condition=Q(unique_key__isnull=False) & KEY_HOLDERS[UniqueWhile.WAITING],
            ),
            # Each tick of a schedule enqueues at most one job, however many workers race on it
            # and whatever an edit does to next_run_at (see scheduler.py). Partial: only
            # scheduled jobs are in the index.
            models.UniqueConstraint(
                fields=["schedule", "scheduled_for"],
                name="django_jobs_schedule_tick_unique",
                condition=Q(scheduled_for__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.name} ({self.status})"

    # -- transitions an operator or application code may ask for -------------------------------

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def retry(self, now: datetime | None = None, *, by: str = "") -> bool:
        """Queue a dead, stopped or retrying job to run now, keeping its history.

        Returns False (and changes nothing) when the job is in another state. The job gets a fresh
        budget, as many attempts again as its registered job allows, and its backoff starts again
        from the first delay (``attempts`` keeps counting up, so the attempt number stays a
        fencing token; ``attempts_at_retry`` notes where the new budget began).
        """
        done = self._same().retry(now=now, by=by).done_count
        self.refresh_from_db()
        return bool(done)

    def stop(self, reason: str = "", now: datetime | None = None, *, by: str = "") -> bool:
        """Stop this job: a waiting job ends ``stopped`` at once; a running one is asked to stop.

        Returns False when the job had already finished.
        """
        done = self._same().stop(reason, now=now, by=by).done_count
        self.refresh_from_db()
        return bool(done or self.stop_requested_at)

    def dead_letter(self, note: str = "", now: datetime | None = None, *, by: str = "") -> bool:
        """Move a queued, retrying or stopped job to ``dead``, with an optional operator note."""
        done = self._same().dead_letter(note, now=now, by=by).done_count
        self.refresh_from_db()
        return bool(done)

    # -- results from code -------------------------------------------------------------------------

    def wait(self, timeout: float | timedelta | None = None) -> Job[R]:
        """Block until this job has finished (succeeded, stopped or dead); return it, refreshed.

        Raises TimeoutError if it hasn't within ``timeout`` seconds (None: however long it
        takes). Woken by the notification a worker sends with the outcome; it polls every
        POLL_INTERVAL without LISTEN_NOTIFY, and for outcomes no worker writes (an operator
        stopping a queued job). For commands, scripts and tests: never in a request, whose
        process would be held as long as the job takes.
        """
        seconds = _wait_seconds(timeout)
        if self.pk is None:
            raise ValueError("wait() waits for an enqueued job; this one was never saved.")
        using = self._state.db or Job.objects.db
        deadline = None if seconds is None else time.monotonic() + seconds
        with channel.OutcomeWaiter(using, Job._meta.db_table) as waiter:
            while (status := waiter.status(self.pk)) not in FINISHED_STATUSES:
                if status is None:
                    raise self._not_visible(using)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(
                        f"Job #{self.pk} ({self.name}) hasn't finished within {seconds:g}s: it is {status}."
                    )
                waiter.pause(self.pk, waiter.interval if left is None else left)
        self.refresh_from_db(using=using)
        return self

    def _not_visible(self, using: str) -> Exception:
        if Job.objects.using(using).filter(pk=self.pk).exists():
            return JobNotCommitted(
                f"Job #{self.pk} ({self.name}) isn't committed yet, so no worker can run it: call "
                f"wait() after the transaction that enqueued it commits (outside atomic(), or in "
                f"transaction.on_commit()). In tests, use a transactional test "
                f"(django_db(transaction=True), TransactionTestCase)."
            )
        return Job.DoesNotExist(f"Job #{self.pk} ({self.name}) no longer exists (deleted or pruned).")

    def _same(self) -> JobQuerySet:
        return Job.objects.using(self._state.db or Job.objects.db).filter(pk=self.pk)


class Dependency(models.Model):
    """One edge of a workflow: ``downstream`` waits until ``upstream`` has succeeded.

    Rows are written with the downstream job (``using(after=[...])``) and deleted with either job
    (by pruning's statement, or by Django's delete cascade). No database foreign keys: pruning
    deletes jobs with raw SQL, and an upstream job may go before its (finished) downstream jobs.
    """

    id = models.BigAutoField(primary_key=True)
    # (No index of their own: the unique constraint and the index below lead with each.)
    upstream = models.ForeignKey(
        Job, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="downstream_edges"
    )
    downstream = models.ForeignKey(
        Job, on_delete=models.CASCADE, db_constraint=False, db_index=False, related_name="upstream_edges"
    )

    class Meta:
        default_permissions = ()
        constraints = [
            # Also the index of the outcome write's walk from a finished job to its downstream.
            models.UniqueConstraint(fields=["upstream", "downstream"], name="django_jobs_dependency_unique"),
        ]
        indexes = [models.Index("downstream", "upstream", name="django_jobs_downstream_idx")]

    def __str__(self) -> str:
        return f"#{self.downstream_id} after #{self.upstream_id}"


#: NOTIFY payloads that aren't queue names start with "!": every worker acts on them.
CONTROL_STOP = "!stop"
CONTROL_PAUSE = "!pause"
#: A worker set aside jobs whose name it doesn't know: workers that know it put them back.
CONTROL_PARKED = "!parked"
#: A worker joined: every worker's fair share of the slots of limits changes (flow.fair_share).
CONTROL_JOINED = "!joined"


def _notify(queue: str) -> None:
    channel.notify(queue)


def _notify_control(message: str) -> None:
    channel.notify(message, control=True)


class DeadLetter(Job[Any]):
    """Dead jobs, for the admin's dead-letter page (a proxy: same table, no extra columns)."""

    class Meta:
        proxy = True
        verbose_name = "dead letter"
        verbose_name_plural = "dead letters"


class QueueOverview(Job[Any]):
    """A hook for the admin's operations overview page (a proxy with no rows of its own)."""

    class Meta:
        proxy = True
        verbose_name = "overview"
        verbose_name_plural = "overview"
        default_permissions = ("view",)


class Worker(models.Model):
    """A live ``runjobs`` process. Its row is removed when it exits cleanly."""

    worker_id = models.CharField(max_length=255, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    queues = models.JSONField(default=list, help_text="Empty: every queue.")
    concurrency = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    # Ids of the jobs this worker holds (claimed, running or with an outcome still to write), as
    # its main loop last published them at ``listed_at``. A running job of this worker claimed
    # RESCUE_AFTER before ``listed_at`` and missing here is lost (its claim's reply never came).
    running = models.JSONField(default=list, blank=True)
    listed_at = models.DateTimeField(null=True, blank=True)
    # Ids of the jobs this worker may have sent to a child: written in the same statement as its
    # claims and outcomes, before any of them is sent (worker/ledger.py). A running job of this
    # worker missing here provably never started, and rescue gives it back without spending an
    # attempt. NULL: nothing declared (a row re-created by a heartbeat): any job may have started.
    may_start = models.JSONField(null=True, blank=True, default=None)
    # Which kernel and PID namespace ``pid`` belongs to (boot id and namespace inode): a worker may
    # only judge another's pid dead when both are its own. Empty when they can't be read.
    pid_namespace = models.CharField(max_length=100, blank=True, default="", db_default="")
    # The job names registered in its code: the jobs it can run (see KnownName).
    names = models.JSONField(default=list, blank=True, db_default=[])

    class Meta:
        ordering = ["worker_id"]

    def __str__(self) -> str:
        return self.worker_id

    def knows(self, name: str) -> bool:
        """Whether this worker's code registers the job name. A worker from before names were
        recorded (none listed) counts as knowing every name: nothing says it doesn't."""
        return not self.names or name in self.names


class KnownNameManager(models.Manager["KnownName"]):
    def saw(self, names: list[str], now: datetime) -> None:
        """Record that a live worker knows ``names`` at ``now`` (one statement)."""
        if names:
            self.bulk_create(
                [KnownName(name=name, seen_at=now) for name in names],
                update_conflicts=True, unique_fields=["name"], update_fields=["seen_at"],
            )

    def known_since(self, name: str, since: datetime) -> bool:
        """Whether a worker has said it knows ``name`` at ``since`` or later."""
        return self.filter(name=name, seen_at__gte=since).exists()


class KnownName(models.Model):
    """A job name some worker has registered, and when a worker last said so.

    Kept after the workers exit (worker rows are deleted then), so that a job whose name no live
    worker knows ends dead only once none has known it for UNKNOWN_JOB_GRACE.
    """

    name = models.CharField(max_length=255, primary_key=True)
    seen_at = models.DateTimeField()

    objects = KnownNameManager()

    def __str__(self) -> str:
        return self.name


class PauseManager(models.Manager["Pause"]):
    def pause(self, kind: str, value: str, reason: str = "") -> Pause:
        """Pause a queue or job name on every worker (idempotent).

        A job name must be registered: a typo would pause nothing and say nothing.
        """
        if kind == Pause.Kind.NAME:
            problem = unregistered_name_problem(value)
            if problem:
                raise JobNotRegistered(f"{problem} Nothing was paused.")
        pause, _ = self.get_or_create(kind=kind, value=value, defaults={"reason": reason})
        _notify_control(CONTROL_PAUSE)
        return pause

    def resume(self, kind: str, value: str) -> bool:
        """Lift a pause; returns False when it wasn't paused."""
        deleted, _ = self.filter(kind=kind, value=value).delete()
        _notify_control(CONTROL_PAUSE)
        return bool(deleted)

    def pause_queue(self, queue: str, reason: str = "") -> Pause:
        return self.pause(Pause.Kind.QUEUE, queue, reason)

    def resume_queue(self, queue: str) -> bool:
        return self.resume(Pause.Kind.QUEUE, queue)

    def pause_job(self, name: str, reason: str = "") -> Pause:
        return self.pause(Pause.Kind.NAME, name, reason)

    def resume_job(self, name: str) -> bool:
        return self.resume(Pause.Kind.NAME, name)


class LimitManager(models.Manager["Limit"]):
    def set(
        self, kind: str, value: str, *, concurrency: int | None = None, rate: str | None = None,
        note: str = "", changed_by: str = "",
    ) -> Limit:
        """Set (or replace) the operator limit on a queue or job name; validated like the admin form."""
        limit = self.filter(kind=kind, value=value).first() or self.model(kind=kind, value=value)
        limit.concurrency, limit.rate = concurrency, rate or ""
        limit.note, limit.changed_by = note, changed_by
        limit.full_clean(validate_unique=False)
        limit.save()
        return limit

    def lift(self, kind: str, value: str) -> bool:
        """Remove the operator limit on a queue or job name; False when there was none."""
        deleted, _ = self.filter(kind=kind, value=value).delete()
        _notify_control(CONTROL_PAUSE)
        return bool(deleted)


class Pause(models.Model):
    """A paused queue or job name: workers don't claim matching jobs until the row is removed."""

    class Kind(models.TextChoices):
        QUEUE = "queue", "Queue"
        NAME = "name", "Job name"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.CharField(max_length=255)
    reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    objects = PauseManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="django_jobs_pause_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"

    def clean(self) -> None:
        if self.kind == Pause.Kind.NAME and self.value:
            problem = unregistered_name_problem(self.value)
            if problem:
                raise ValidationError({"value": problem})


def unregistered_name_problem(name: str) -> str | None:
    """What registry.lookup() says of ``name`` (with "did you mean"), or None when it is registered."""
    try:
        registry.lookup(name)
    except JobNotRegistered as exc:
        return str(exc)
    return None


class Limit(models.Model):
    """An operator's concurrency or rate limit on a queue or job name.

    It replaces the value code declares for the same target (``@job(concurrency=…)``, or
    ``DJANGO_JOBS["QUEUES"]``) and keeps a job's key template; every worker applies it within a
    couple of seconds. Rows are edited in the admin.
    """

    class Kind(models.TextChoices):
        QUEUE = "queue", "Queue"
        NAME = "name", "Job name"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.CharField(max_length=255, help_text="The queue or the registered job name.")
    concurrency = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many running at once (per key for a keyed job)."
    )
    rate = models.CharField(
        max_length=32, blank=True, default="", help_text='At most this many starts per period: "30/m", "5/s", "1000/h".'
    )
    note = models.CharField(max_length=255, blank=True, default="", help_text="Why: shown to other operators.")
    changed_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = LimitManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="django_jobs_limit_unique")]

    def __str__(self) -> str:
        parts = [f"concurrency {self.concurrency}" if self.concurrency is not None else "", self.rate]
        return f"{self.get_kind_display().lower()} {self.value}: " + ", ".join(p for p in parts if p)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.concurrency is None and not self.rate:
            errors[NON_FIELD_ERRORS] = "Give a concurrency, a rate, or both (delete the limit to lift it)."
        if self.concurrency is not None:
            try:
                check_concurrency(self.concurrency, "concurrency")
            except InvalidJobOptions as exc:
                errors["concurrency"] = str(exc)
        if self.rate:
            try:
                self.rate = str(parse_rate(self.rate.strip(), "rate"))
            except InvalidJobOptions as exc:
                errors["rate"] = str(exc)
        if self.kind == Limit.Kind.NAME and self.value:
            problem = unregistered_name_problem(self.value)
            if problem:
                errors["value"] = problem
        if self.kind == Limit.Kind.QUEUE and self.value:
            problem = queue_problem(self.value)
            if problem:
                errors["value"] = problem
        if errors:
            raise ValidationError(errors)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.updated_at = timezone.now()
        super().save(*args, **kwargs)
        _notify_control(CONTROL_PAUSE)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        result = super().delete(*args, **kwargs)
        _notify_control(CONTROL_PAUSE)
        return result


class Start(models.Model):
    """One start of a rate-limited job, kept for the longest rate period: the sliding window's log.

    The rate gate counts these rather than ``Job.started_at``, which a retry overwrites and
    pruning deletes.
    """

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=255)
    started_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index("key", "started_at", name="django_jobs_start_key_idx")]


def default_timezone() -> str:
    """The timezone a schedule's cron is read in unless it names one: ``settings.TIME_ZONE``."""
    from django.conf import settings

    return getattr(settings, "TIME_ZONE", None) or "UTC"


#: The longest grace a schedule may have (10 years): longer would be no alarm at all.
MAX_SCHEDULE_GRACE = 10 * 365 * 24 * 3600


class ScheduleQuerySet(models.QuerySet["Schedule"]):
    def enable(self, now: datetime | None = None) -> int:
        """Enable the disabled schedules among these, each from its next tick after ``now``."""
        count = 0
        for schedule in self.filter(enabled=False):
            count += schedule.enable(now=now)
        return count

    def disable(self) -> int:
        """Disable the enabled schedules among these: no tick fires until they are enabled."""
        return self.filter(enabled=True).update(enabled=False, next_run_at=None, updated_at=_now())

    def with_last_success(self) -> ScheduleQuerySet:
        """Annotate ``latest_success``: the later of ``last_success_at`` (stored by the
        missed-schedule service, kept when pruning deletes the job) and the latest succeeded job
        still in the table (an index probe on django_jobs_sched_success_idx)."""
        latest_job = Subquery(
            Job.objects.filter(schedule=OuterRef("pk"), status=JobStatus.SUCCEEDED)
            .order_by("-finished_at")
            .values("finished_at")[:1]
        )
        # Coalesce both ways: GREATEST is NULL on some databases when either side is.
        return self.annotate(
            latest_success=Greatest(
                Coalesce("last_success_at", latest_job), Coalesce(latest_job, "last_success_at")
            )
        )


class Schedule(models.Model):
    """A recurring job: enqueues its registered job on a cron rhythm (see scheduler.py).

    ``next_run_at`` is recomputed on save whenever it would otherwise be wrong: for a new
    schedule, an edited ``cron`` or ``timezone``, or a schedule enabled again (from now on: ticks
    missed while it was disabled are not replayed). A disabled schedule has no ``next_run_at``.
    """

    class CatchUp(models.TextChoices):
        # Ticks more than SCHEDULE_MISFIRE_GRACE seconds late are dropped.
        SKIP = "skip", "Skip missed ticks"
        # However many ticks were missed, one job runs (for the latest of them).
        ONCE = "once", "Run once for all missed ticks"
        # One job per missed tick, at most SCHEDULE_CATCH_UP_MAX (the latest ones).
        ALL = "all", "Run every missed tick (capped)"

    class Source(models.TextChoices):
        # Created and owned in the admin.
        ADMIN = "admin", "Admin"
        # Declared with @job(cron=…) or DJANGO_JOBS["SCHEDULES"]; workers sync it at start.
        CODE = "code", "Code"

    name = models.CharField(max_length=200, unique=True, help_text="A unique name, e.g. nightly-report.")
    job_name = models.CharField(max_length=255, help_text="The registered job it enqueues.")
    args = models.JSONField(
        default=list, blank=True, help_text='Positional arguments as a JSON list, e.g. [7, "eu"].'
    )
    kwargs = models.JSONField(
        default=dict, blank=True, help_text='Keyword arguments as a JSON object, e.g. {"days": 7}.'
    )
    cron = models.CharField(
        max_length=200,
        help_text="Five fields: minute hour day-of-month month day-of-week. "
        "'5 0 * * *' is 00:05 every day, '*/15 * * * 1-5' every 15 minutes on weekdays.",
    )
    timezone = models.CharField(
        max_length=64,
        default=default_timezone,
        help_text="The IANA timezone the cron is read in, e.g. Europe/Berlin.",
    )
    enabled = models.BooleanField(default=True)
    queue = models.CharField(
        max_length=100, blank=True, default="", help_text="Empty: the job's own queue."
    )
    priority = models.IntegerField(null=True, blank=True, help_text="Empty: the job's own priority.")
    catch_up = models.CharField(
        max_length=8,
        choices=CatchUp.choices,
        default=CatchUp.ONCE,
        help_text="What happens to ticks missed while no worker was running.",
    )
    next_run_at = models.DateTimeField(null=True, blank=True, help_text="Empty while disabled.")
    last_run_at = models.DateTimeField(null=True, blank=True, help_text="When it last enqueued a job.")
    last_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The missed-schedule check (services/schedules.py): each tick must give a succeeded job
    # within the grace, or the schedule is flagged (admin, overview, metrics, mail).
    grace = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_SCHEDULE_GRACE)],
        help_text="Seconds after a tick by which a job of this schedule must have succeeded, "
        "or the schedule is flagged as missed. Empty: DJANGO_JOBS[\"SCHEDULE_GRACE\"].",
    )
    last_success_at = models.DateTimeField(
        null=True, blank=True, help_text="When a job of this schedule last succeeded."
    )
    # Ticks before this don't count for the missed check: set when the schedule is created,
    # enabled again, or given a new cron or timezone (None on rows older than the field:
    # created_at counts then).
    watched_from = models.DateTimeField(null=True, blank=True)
    # When ADMINS were last mailed about this schedule being missed (the mail's rate limit).
    missed_mailed_at = models.DateTimeField(null=True, blank=True)
    # Why the last due tick enqueued nothing (e.g. arguments the job no longer accepts).
    last_error = models.TextField(blank=True, default="")
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.ADMIN)
    created_at = models.DateTimeField(default=_now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            # The scheduler's "what is due" lookup, every second on every worker.
            models.Index(
                fields=["next_run_at"],
                name="django_jobs_schedule_due_idx",
                condition=Q(enabled=True),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    # What the row held when loaded, so save() can tell an edit of the rhythm from other edits.
    _loaded: tuple[str, str, bool] | None = None

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Schedule:
        # **kwargs: Django 6.1 passes fetch_mode (and warns about overrides that can't take it).
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._remember()
        return instance

    def _remember(self) -> None:
        self._loaded = (self.cron, self.timezone, self.enabled)

    def problems(self) -> dict[str, str]:
        """What is wrong with the cron, timezone, job name or arguments, by field name.

        The key ``__all__`` holds arguments the job's signature doesn't accept. Not Model.clean():
        a ModelForm that shows only some fields (the admin's, for a schedule declared in code)
        can't take errors about the others.
        """

        errors: dict[str, str] = {}
        # Checked here rather than when the schedule fires, where using() would refuse it.
        problem = queue_problem(self.queue) if self.queue else None
        if problem:
            errors["queue"] = f"The {problem}."
        try:
            cron.parse(self.cron)
        except InvalidCron as exc:
            errors["cron"] = str(exc)
        try:
            cron.zone(self.timezone)
        except InvalidCron as exc:
            errors["timezone"] = str(exc)
        if not isinstance(self.args, list):
            errors["args"] = 'Arguments must be a JSON list, e.g. [7, "eu"] (or [] for none).'
        if not isinstance(self.kwargs, dict):
            errors["kwargs"] = 'Keyword arguments must be a JSON object, e.g. {"days": 7} (or {}).'
        try:
            definition = registry.lookup(self.job_name)
        except JobNotRegistered as exc:
            errors["job_name"] = str(exc)
        else:
            if "args" not in errors and "kwargs" not in errors:
                try:
                    validate_arguments(definition, self.args, self.kwargs)
                except (InvalidJobArguments, InvalidPayload) as exc:
                    errors[NON_FIELD_ERRORS] = str(exc)
        return errors

    def save(self, *args: Any, now: datetime | None = None, **kwargs: Any) -> None:
        """Save, recomputing ``next_run_at`` from ``now`` when the rhythm or ``enabled`` changed."""
        loaded = None if self._state.adding else self._loaded
        changed = loaded is None or loaded != (self.cron, self.timezone, self.enabled)
        if changed or (self.enabled and self.next_run_at is None) or not self.enabled:
            moment = now or timezone.now()
            self.next_run_at = self.next_tick_after(moment) if self.enabled else None
            also = {"next_run_at"}
            if changed and self.enabled:
                self.watched_from = moment
                also.add("watched_from")
            update_fields = kwargs.get("update_fields")
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, *also}
        super().save(*args, **kwargs)
        self._remember()

    def next_tick_after(self, moment: datetime) -> datetime:
        """This schedule's first tick strictly after ``moment``."""
        return cron.next_after(self.cron, self.timezone, moment)

    def upcoming(self, count: int = 5, now: datetime | None = None) -> list[datetime]:
        """The next ``count`` ticks after ``now`` (in UTC, as every datetime cron.py returns)."""
        return cron.next_times(self.cron, self.timezone, now or timezone.now(), count)

    def describe(self) -> str:
        """The cron in words: "At 00:05, every day"."""
        return cron.describe(self.cron)

    @property
    def effective_grace(self) -> timedelta:
        """Its ``grace``, or ``DJANGO_JOBS["SCHEDULE_GRACE"]`` when it has none."""
        seconds = self.grace if self.grace is not None else jobs_settings.SCHEDULE_GRACE
        return timedelta(seconds=float(seconds))

    def missed_tick(self, now: datetime, last_success: datetime | None = None) -> datetime | None:
        """The tick this schedule missed as of ``now``, or None while it isn't missed.

        Missed: it is enabled, and its latest tick at least ``effective_grace`` before ``now``
        (and not before ``watched_from``) has no success at or after it. ``last_success``
        defaults to ``last_success_at``; pass ``latest_success`` from ``with_last_success()``.
        """
        if not self.enabled:
            return None
        if last_success is None:
            last_success = self.last_success_at
        since = self.watched_from or self.created_at
        try:
            tick = cron.latest_at_or_before(self.cron, self.timezone, now - self.effective_grace)
        except InvalidCron:
            return None  # the schedule's page and check W101 say what is wrong with it
        if tick is None or tick < since:
            return None
        if last_success is not None and last_success >= tick:
            return None
        return tick

    # -- transitions an operator may ask for ------------------------------------------------------

    def enable(self, now: datetime | None = None) -> bool:
        """Enable it from the next tick after ``now``; False when it already was enabled."""
        if self.enabled:
            return False
        self.enabled = True
        self.save(update_fields=["enabled", "updated_at"], now=now)
        return True

    def disable(self) -> bool:
        """Disable it: no tick fires until it is enabled again. False when already disabled."""
        if not self.enabled:
            return False
        self.enabled = False
        self.save(update_fields=["enabled", "updated_at"])
        return True

    def run_now(self, now: datetime | None = None) -> Job[Any]:
        """Enqueue its job at once, outside the cron rhythm; the job links back to this schedule."""
        # The one lazy call up the layers from the models: a schedule enqueueing itself, as
        # JobDefinition.enqueue() does (scheduler imports models).
        from .scheduler import run_now

        return run_now(self, now=now or timezone.now())


# -- monitoring: counters for the metrics endpoint, the dead-job mail's rate limit ---------------


class FinishedCounter(models.Model):
    """How many jobs have finished, by queue, job name and status, since counting began.

    Tallied from the job table by a worker service (services/tally.py) and only ever increased, so
    Prometheus can take rates from them whatever pruning deletes later.
    """

    queue = models.CharField(max_length=100)
    name = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=JobStatus.choices)
    count = models.BigIntegerField(default=0)

    class Meta:
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["queue", "name", "status"], name="django_jobs_counter_unique")
        ]

    def __str__(self) -> str:
        return f"{self.queue} {self.name} {self.status}: {self.count}"


class CounterMark(models.Model):
    """How far a tally has read: jobs that finished up to ``counted_until`` are counted."""

    key = models.CharField(max_length=32, primary_key=True)
    counted_until = models.DateTimeField()

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.key} until {self.counted_until.isoformat()}"


class Sample(models.Model):
    """One bucket of the admin's charts: a minute (``span`` 60) or an hour (``span`` 3600).

    Written by the tally service (services/tally.py, db/series.py) once per minute, on whichever
    worker gets there first, and rolled up into hours as each hour ends. Three kinds of row share
    the table, so that each chart reads rows already summed: per queue and job name (``queue`` and
    ``name`` set), per queue (``name`` empty) and for every queue (both empty, written for every
    bucket recorded, so a missing bucket means nothing was recorded rather than nothing happened).
    Pruned after ``CHARTS_MINUTE_RETENTION`` and ``CHARTS_HOUR_RETENTION``.
    """

    #: Seconds the bucket covers: 60 or 3600.
    span = models.PositiveIntegerField()
    #: When the bucket begins.
    bucket = models.DateTimeField()
    queue = models.CharField(max_length=100, blank=True, default="")
    name = models.CharField(max_length=255, blank=True, default="")
    # Jobs that finished in the bucket, by outcome.
    succeeded = models.PositiveIntegerField(default=0)
    stopped = models.PositiveIntegerField(default=0)
    dead = models.PositiveIntegerField(default=0)
    # Their last attempt's duration in seconds (finished_at - started_at); None without jobs.
    # An hour's are the minutes' weighted by their jobs: an approximation.
    p50 = models.FloatField(null=True, blank=True)
    p95 = models.FloatField(null=True, blank=True)
    # Rows without a name: jobs ready to run (due) and the oldest one's wait in seconds, as the
    # minute was recorded (an hour: the highest of its minutes). None for a minute a worker
    # caught up after it passed, whose depth nobody saw.
    depth = models.PositiveIntegerField(null=True, blank=True)
    lag = models.FloatField(null=True, blank=True)

    class Meta:
        default_permissions = ()
        constraints = [
            # Also the index every chart reads: one name (or "" for the queues) at one span, over
            # a range of buckets.
            models.UniqueConstraint(
                fields=["span", "name", "bucket", "queue"], name="django_jobs_sample_unique"
            ),
        ]
        indexes = [
            # Pruning deletes by age whatever the name.
            models.Index("span", "bucket", name="django_jobs_sample_age_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.span}s at {self.bucket.isoformat()} {self.queue or '*'} {self.name or '*'}"


class DeadJobMail(models.Model):
    """When ADMINS were last mailed about a job name going dead (alerts.py's rate limit)."""

    name = models.CharField(max_length=255, unique=True)
    mailed_at = models.DateTimeField()
    # Jobs of this name that went dead since that mail without a mail of their own.
    unmailed = models.PositiveIntegerField(default=0)

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.name} mailed {self.mailed_at.isoformat()}"
