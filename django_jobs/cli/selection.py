"""Which jobs a subcommand is about: ids and the filters ``list``, ``retry``, ``stop`` and
``deadletter`` share, each checked where argparse reads it, and the question asked before
changing more than one job."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ..conf import jobs_settings
from ..models import Job, JobQuerySet, JobStatus
from ..registry import name_problem, queue_problem, registry
from ..stats import known_queues
from . import BAD_INPUT, NOT_CONFIRMED

#: ``--since 30m``: a number and a unit.
SINCE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SINCE = re.compile(r"(\d+)\s*([smhdw])")
SINCE_EXAMPLES = "30m, 2h, 1d, or an ISO date or date-time (2026-12-06, 2026-12-06T08:00)"


def job_id(text: str) -> int:
    """An id as argparse reads it: a positive integer, ``#12`` accepted as the admin shows it."""
    number = text.strip().removeprefix("#")
    # isdecimal(), not isdigit(): "²" is a digit that int() refuses.
    if not number.isdecimal() or not 0 < int(number) < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (a positive whole number)")
    return int(number)


def positive(text: str) -> int:
    """A count of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def statuses(text: str) -> list[str]:
    """``--status dead`` or ``--status queued,retrying``: known statuses, with a did-you-mean."""
    values = [s.strip().lower() for s in text.split(",") if s.strip()]
    if not values:
        raise argparse.ArgumentTypeError("needs a status")
    for value in values:
        if value not in JobStatus.values:
            close = difflib.get_close_matches(value, JobStatus.values, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise argparse.ArgumentTypeError(
                f"no status is called {value!r}; {hint}The statuses are "
                f"{', '.join(JobStatus.values)}"
            )
    return values


def queues(text: str) -> list[str]:
    """``--queue emails`` or ``--queue emails,webhooks``, like ``runjobs --queue``."""
    values = [q.strip() for q in text.split(",") if q.strip()]
    if not values:
        raise argparse.ArgumentTypeError("needs a queue name")
    for value in values:
        problem = queue_problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
    return values


def job_name(text: str) -> str:
    """``--name shop.send_email``: text that could be a stored job's name."""
    value = text.strip()
    problem = name_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def since(text: str) -> timedelta | datetime:
    """``--since``: how long ago (``30m``, ``2h``, ``1d``), or from when (ISO 8601)."""
    value = text.strip()
    match = _SINCE.fullmatch(value.lower())
    if match:
        amount = int(match[1])
        if amount < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is no time ago; give e.g. {SINCE_EXAMPLES}")
        try:
            ago = timedelta(**{SINCE_UNITS[match[2]]: amount})
            datetime.now() - ago  # noqa: B018 - fails here, not later in the query, if too far
        except OverflowError:
            raise argparse.ArgumentTypeError(f"{text!r} is further back than any date") from None
        return ago
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            moment = datetime.combine(day, time()) if day is not None else None
    except ValueError as exc:
        # Well-formed but impossible, e.g. 2026-13-01: say what parse_datetime found wrong.
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid date or time: {exc}") from None
    if moment is None:
        raise argparse.ArgumentTypeError(f"can't read {text!r}; give e.g. {SINCE_EXAMPLES}")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def add_filters(parser: argparse.ArgumentParser, *, ids: bool) -> None:
    """The options that select jobs: ids (when ``ids``), status, name, queue, age and a limit."""
    if ids:
        parser.add_argument(
            "ids", nargs="*", type=job_id, metavar="ID",
            help="Job ids (as in the admin: 12 or #12). With filters too, only those ids that "
            "match them.",
        )
    parser.add_argument(
        "--status", action="extend", type=statuses, default=[], dest="statuses", metavar="STATUS",
        help=f"Only jobs in this status: {', '.join(JobStatus.values)}. Repeatable, or "
        "comma-separated.",
    )
    parser.add_argument(
        "--name", action="append", type=job_name, default=[], dest="names", metavar="NAME",
        help="Only jobs of this job name (repeatable).",
    )
    parser.add_argument(
        "--queue", action="extend", type=queues, default=[], dest="queues", metavar="QUEUE",
        help="Only jobs in this queue. Repeatable, or comma-separated.",
    )
    parser.add_argument(
        "--since", type=since, metavar="WHEN",
        help=f"Only jobs created since then: {SINCE_EXAMPLES}.",
    )
    parser.add_argument(
        "--limit", type=positive, metavar="N",
        help="At most the N newest matching jobs." + ("" if ids else " Default: 50."),
    )


@dataclass(frozen=True)
class Selection:
    """The jobs a subcommand's options name: every filter given must hold."""

    ids: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    since: timedelta | datetime | None = None
    limit: int | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Selection:
        return cls(
            ids=tuple(dict.fromkeys(options.get("ids") or ())),
            statuses=tuple(dict.fromkeys(options["statuses"])),
            names=tuple(dict.fromkeys(options["names"])),
            queues=tuple(dict.fromkeys(options["queues"])),
            since=options["since"],
            limit=options["limit"],
        )

    @property
    def filtered(self) -> bool:
        """Whether anything narrows the selection (a ``--limit`` alone doesn't)."""
        return bool(self.ids or self.statuses or self.names or self.queues or self.since)

    def jobs(self, now: datetime) -> JobQuerySet:
        """The matching jobs, newest first, without ``limit``."""
        jobs = Job.objects.using(jobs_settings.DATABASE).order_by("-pk")
        if self.ids:
            jobs = jobs.filter(pk__in=self.ids)
        if self.statuses:
            jobs = jobs.filter(status__in=self.statuses)
        if self.names:
            jobs = jobs.filter(name__in=self.names)
        if self.queues:
            jobs = jobs.filter(queue__in=self.queues)
        if self.since is not None:
            start = now - self.since if isinstance(self.since, timedelta) else self.since
            jobs = jobs.filter(created_at__gte=start)
        return jobs

    def missing_ids(self) -> list[int]:
        """The ids given that no job has."""
        found = set(
            Job.objects.using(jobs_settings.DATABASE)
            .filter(pk__in=self.ids)
            .values_list("pk", flat=True)
        )
        return [i for i in self.ids if i not in found]

    def why_empty(self) -> str | None:
        """When nothing matched, a name or queue that no code knows, with the closest known one:
        likely a typo. None when the filters look right and simply match nothing."""
        for name in self.names:
            if name not in registry:
                return (
                    f"--name: no job is registered as {name!r} and no stored job has that "
                    f"name.{registry.did_you_mean(name)}"
                )
        known = known_queues()
        for queue in self.queues:
            if queue not in known:
                close = difflib.get_close_matches(queue, sorted(known), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                return f"--queue: no job is in the queue {queue!r}.{hint}"
        return None


def add_confirmation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true",
        help="Say what would change, by job name and status; change nothing.",
    )
    parser.add_argument(
        "--yes", "-y", action="store_true",
        help="Don't ask before changing more than one job (needed without a terminal).",
    )


def confirm(command: BaseCommand, options: dict[str, Any], question: str) -> None:
    """Ask ``question`` on the terminal; raise unless the answer is yes.

    Without a terminal (cron, CI, a pipe) nobody can answer: refuse at once rather than wait for
    input that never comes. ``--yes`` skips the question.
    """
    if options.get("yes"):
        return
    stdin: TextIO = options.get("stdin") or sys.stdin
    try:
        terminal = stdin.isatty()
    except (AttributeError, ValueError):  # closed, or not a file
        terminal = False
    if not terminal:
        raise CommandError(
            f"{question} There is no terminal to ask on: add --yes to go ahead, or --dry-run to "
            "only see what would change. Nothing changed.",
            returncode=NOT_CONFIRMED,
        )
    command.stdout.write(f"{question} [y/N] ", ending="")
    command.stdout.flush()
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise CommandError("Not confirmed; nothing changed.", returncode=NOT_CONFIRMED)


def bad_input(message: str) -> CommandError:
    """The error for input that can't be acted on, with the exit code that says so."""
    return CommandError(message, returncode=BAD_INPUT)
