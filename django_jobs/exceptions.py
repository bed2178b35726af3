"""Errors raised by django-jobs, and the control-flow exceptions a job may raise.

Every error also inherits the builtin it is, so ``except LookupError`` keeps working for callers who
do not know about django-jobs.
"""

from __future__ import annotations

from datetime import datetime, timedelta


class JobsError(Exception):
    """Base class of every error django-jobs raises."""


class JobNotRegistered(JobsError, LookupError):
    """A job name that no ``@job`` registered in this process."""


class InvalidJobArguments(JobsError, TypeError):
    """Arguments that don't bind to the job function's signature."""


class InvalidPayload(JobsError, ValueError):
    """Arguments that don't survive a JSON round trip unchanged."""


class PayloadTooLarge(InvalidPayload):
    """Arguments whose JSON is larger than ``DJANGO_JOBS["MAX_PAYLOAD_BYTES"]``."""


class InvalidJobOptions(JobsError, ValueError):
    """A bad option given to ``@job`` or ``using()``."""


class InvalidSchedule(JobsError, ValueError):
    """A cron schedule that can't be used: a bad declaration in code or settings, or bad fields."""


class InvalidCron(InvalidSchedule):
    """A cron expression or timezone name that can't be parsed."""


class JobTimeout(JobsError, TimeoutError):
    """An attempt that ran past its job's ``timeout`` and was killed."""


class WorkerLost(JobsError, RuntimeError):
    """An attempt whose worker (or the process running it) died before reporting an outcome."""


class OutcomeNotStorable(JobsError, ValueError):
    """An attempt's outcome that the database refused to store (recorded in its place)."""


class ResultNotJSON(JobsError, TypeError):
    """A job returned a value that can't be stored as JSON."""


class JobNotCommitted(JobsError, RuntimeError):
    """``Job.wait()`` on a job whose enqueue hasn't committed: no worker can see it yet."""


class JobControl(Exception):
    """Base of the exceptions a job raises to steer its own outcome; they are not failures."""


class Retry(JobControl):
    """Run this job again later, without counting the attempt as a failure.

    ``raise Retry(in_=timedelta(minutes=5))`` or ``raise Retry(at=some_aware_datetime)``.
    The attempt is given back (``max_attempts`` grows by one), so snoozing never uses up the
    job's failure budget; a job that snoozes forever runs forever.
    """

    def __init__(self, in_: timedelta | float | None = None, *, at: datetime | None = None):
        if (in_ is None) == (at is None):
            raise InvalidJobOptions("Retry() needs exactly one of in_=timedelta(...) or at=datetime.")
        if at is not None and at.tzinfo is None:
            raise InvalidJobOptions(
                f"Retry(at={at!r}) is a naive datetime; pass an aware one "
                f"(django.utils.timezone.now() + timedelta(...))."
            )
        if isinstance(in_, (int, float)):
            in_ = timedelta(seconds=in_)
        self.in_ = in_
        self.at = at
        super().__init__(f"retry in {in_}" if in_ is not None else f"retry at {at}")


class StopJob(JobControl):
    """End this job as ``stopped``; it won't run again unless an operator retries it."""

    def __init__(self, reason: str = ""):
        self.reason = reason
        super().__init__(reason)
