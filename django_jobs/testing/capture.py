"""``capture_jobs()`` and ``EnqueuedJobs``: what was enqueued, and running it in the test."""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from django.db import connections, transaction
from django.db.models import Max
from django.utils import timezone

from ..conf import jobs_settings
from ..models import Job
from ..registry import JobDefinition, registry, resolve
from ..signals import job_started
from ..worker.invocation import run_job
from ..worker.ledger import Ledger

logger = logging.getLogger("django_jobs")

#: The worker id inline runs record in a job's history.
INLINE_WORKER_ID = "django_jobs.testing"

# Outcomes whose attempt failed: inside a test transaction their writes are rolled back.
_FAILED = ("failed", "timeout", "lost")


def job_name(target: str | JobDefinition | Callable[..., Any] | Any) -> str:
    """The registered job name of a name, a @job function, or a task of Django's Tasks framework."""
    if isinstance(target, str):
        return registry.lookup(target).name  # an unknown name fails with a "did you mean"
    module_path = getattr(target, "module_path", None)
    if isinstance(module_path, str) and not isinstance(target, JobDefinition):
        return module_path  # a Task: registered under its module path by django_jobs.backend
    return resolve(target).name


def _describe(jobs: Sequence[Job]) -> str:
    if not jobs:
        return "nothing was enqueued"
    lines = [f"  #{j.pk} {j.name} args={j.args!r} kwargs={j.kwargs!r} queue={j.queue}"
             for j in jobs]
    return "enqueued:\n" + "\n".join(lines)


def _bound(signature: inspect.Signature, args: Any, kwargs: Any) -> dict[str, Any] | None:
    """The arguments of a call as the function would see them (defaults included), or None when
    they don't bind (a row written for an older signature)."""
    if not (isinstance(args, list) and isinstance(kwargs, dict)):
        return None
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    return dict(bound.arguments)


class EnqueuedJobs:
    """The jobs enqueued between this object's making and ``stop()``, and a way to run jobs in
    this process."""

    def __init__(self, using: str | None = None) -> None:
        self.using = using or jobs_settings.DATABASE
        self.after_id = self._last_id()
        self.until_id: int | None = None
        # transaction.on_commit callbacks pending already belong to someone else.
        self._seen: list[Any] = [
            e for alias in connections for e in connections[alias].run_on_commit
        ]

    def _last_id(self) -> int:
        return Job.objects.using(self.using).aggregate(m=Max("id"))["m"] or 0

    def stop(self) -> None:
        """End the capture: jobs enqueued from now on aren't counted (``run()`` still works)."""
        if self.until_id is None:
            self.until_id = self._last_id()

    # -- looking ------------------------------------------------------------------------------

    def all(self) -> list[Job]:
        """Every job the capture saw enqueued, oldest first, whatever its status now."""
        rows = Job.objects.using(self.using).filter(pk__gt=self.after_id)
        if self.until_id is not None:
            rows = rows.filter(pk__lte=self.until_id)
        return list(rows.order_by("pk"))

    def filter(self, target: Any = None, *, queue: str | None = None) -> list[Job]:
        """The captured jobs of one job (name, @job function or task), optionally of one queue."""
        name = job_name(target) if target is not None else None
        return [
            j for j in self.all()
            if (name is None or j.name == name) and (queue is None or j.queue == queue)
        ]

    def assert_enqueued(
        self,
        target: Any,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        count: int | None = None,
    ) -> Job:
        """Fail unless ``target`` was enqueued (with these args/kwargs, when given); return the
        first match. ``count`` asks for exactly that many matches.

        Arguments are compared as a call binds them to the job's signature, defaults included:
        ``kwargs={"order_id": 1}`` matches ``enqueue(1)``, and ``args=[1]`` matches
        ``enqueue(order_id=1)``.
        """
        if count is not None and count < 1:
            raise ValueError(f"count={count}: use assert_not_enqueued() to assert there was none.")
        found = self.filter(target, queue=queue)
        if args is None and kwargs is None:
            matches = found
        else:
            signature = registry.lookup(job_name(target)).signature
            expected = _bound(signature, list(args or ()), dict(kwargs or {}))
            if expected is None:
                raise AssertionError(
                    f"assert_enqueued({job_name(target)}, args={list(args or ())!r}, "
                    f"kwargs={dict(kwargs or {})!r}): these arguments don't bind to its signature "
                    f"{signature}, so no enqueue could have them."
                )
            matches = [j for j in found if _bound(signature, j.args, j.kwargs) == expected]
        if matches and (count is None or len(matches) == count):
            return matches[0]
        wanted = job_name(target)
        if args is not None:
            wanted += f" args={list(args)!r}"
        if kwargs is not None:
            wanted += f" kwargs={kwargs!r}"
        if queue is not None:
            wanted += f" queue={queue}"
        times = "at least once" if count is None else f"{count} time(s), not {len(matches)}"
        raise AssertionError(f"Expected {wanted} to be enqueued {times}; {_describe(self.all())}")

    def assert_not_enqueued(self, target: Any = None, *, queue: str | None = None) -> None:
        """Fail if ``target`` (or, without one, any job) was enqueued."""
        found = self.filter(target, queue=queue)
        if found:
            what = f"{job_name(target)} not" if target is not None else "nothing"
            raise AssertionError(f"Expected {what} to be enqueued; {_describe(found)}")

    # -- running ------------------------------------------------------------------------------

    def run(
        self, *, now: datetime | None = None, raise_errors: bool = False, max_jobs: int = 1000
    ) -> list[Job]:
        """Run ready jobs here, one by one, until none is ready; return them as they ended.

        First it runs the ``transaction.on_commit`` callbacks registered since the capture began,
        as a commit would (enqueues often wait for one); then it claims and runs jobs the way a
        worker does: same claim order, arguments, ``current_job()``, retries, ``Retry``,
        ``StopJob``, dead letters and signals. It repeats until nothing is ready, so jobs that
        jobs enqueue run too. ``now`` is the time that decides what is ready (jobs retrying after
        a backoff need a later one). Unlike a worker it runs no child process, so timeouts are
        not enforced. Inside a test transaction each job runs in a savepoint, rolled back when
        it fails, so a failing job can't break the test's transaction. ``raise_errors`` turns
        the first failed attempt into an AssertionError carrying its traceback.
        """
        clock: Callable[[], datetime] = (lambda: now) if now is not None else timezone.now
        # A worker's ledger without children: its claim and outcome code is what runs here, with
        # the job itself run in this process instead of a child.
        ledger = Ledger.inline(using=self.using, worker_id=INLINE_WORKER_ID, clock=clock)
        ran: list[int] = []
        while True:
            self._run_on_commit_callbacks()
            # Writes the previous job's outcome and claims the next job, as the worker does.
            claimed = ledger.sync(1)
            # Jobs that outcome queued (workflows) are claimable from the next sync on.
            released, ledger.released = ledger.released, 0
            if not ledger.buffer:
                ledger.gated_dirty = True  # here every look is a fresh one
                claimed += ledger.claim_gated(1, free=1)
            if not ledger.buffer:
                if claimed or released:
                    continue  # it set aside jobs no registered job names, or queued waiting ones: look again
                break
            if len(ran) >= max_jobs:
                raise AssertionError(
                    f"run() ran {max_jobs} jobs and more are ready: does a job enqueue itself? "
                    f"Pass max_jobs= to allow more."
                )
            row = ledger.buffer.popleft()
            ran.append(row["id"])
            started_at = clock()
            job_started.send(
                sender=Job, job_id=row["id"], name=row["name"], attempt=row["attempt"],
                worker_id=INLINE_WORKER_ID,
            )
            began = time.monotonic()
            reply = self._attempt(row, INLINE_WORKER_ID)
            ledger.queue(row, reply, time.monotonic() - began, started_at)
            if raise_errors and reply["outcome"] in _FAILED:
                ledger.flush()
                error = reply.get("error") or {}
                raise AssertionError(
                    f"Job #{row['id']} {row['name']} failed (attempt {row['attempt']}):\n"
                    f"{error.get('traceback') or error.get('message', '')}"
                )
        by_id = Job.objects.using(self.using).in_bulk(ran)
        return [by_id[pk] for pk in dict.fromkeys(ran) if pk in by_id]

    def _attempt(self, row: dict[str, Any], worker_id: str) -> dict[str, Any]:
        connection = connections[self.using]
        savepoint = _savepoint(self.using) if connection.in_atomic_block else None
        message = {**row, "args": json.loads(row["args_json"]), "kwargs": json.loads(row["kwargs_json"])}
        reply = run_job({**message, "using": self.using}, worker_id, close_connections=False)
        if savepoint is not None:
            if reply["outcome"] in _FAILED:
                transaction.savepoint_rollback(savepoint, self.using)
            else:
                transaction.savepoint_commit(savepoint, self.using)
        return reply

    def _run_on_commit_callbacks(self) -> None:
        # Like TestCase.captureOnCommitCallbacks(execute=True), but callable many times: each
        # callback runs once, including callbacks that callbacks register.
        while True:
            seen = {id(e) for e in self._seen}
            pending = [
                e for alias in connections for e in connections[alias].run_on_commit
                if id(e) not in seen
            ]
            if not pending:
                return
            for entry in pending:
                self._seen.append(entry)
                # (savepoint ids, callback, robust): Django's own layout since 4.2.
                callback, robust = entry[1], bool(cast(Any, entry)[2])
                if not robust:
                    callback()
                    continue
                try:
                    callback()
                except Exception:  # noqa: BLE001 - robust callbacks only log, as at commit
                    logger.exception("django_jobs event=on_commit_failed callback=%r", callback)


# Django 6.1 renamed transaction.savepoint() to savepoint_create().
_savepoint = getattr(transaction, "savepoint_create", transaction.savepoint)


@contextmanager
def capture_jobs(using: str | None = None) -> Iterator[EnqueuedJobs]:
    """Collect the jobs enqueued inside the block: ``with capture_jobs() as jobs: ...``."""
    jobs = EnqueuedJobs(using)
    try:
        yield jobs
    finally:
        jobs.stop()
