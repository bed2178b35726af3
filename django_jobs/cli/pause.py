"""``jobs pause``: hold a queue or a job name on every worker, as the admin's pause buttons do."""

from __future__ import annotations

import argparse
import difflib
from typing import Any

from django.core.management.base import BaseCommand

from .. import audit
from ..conf import jobs_settings
from ..exceptions import JobNotRegistered
from ..models import Pause, Worker
from ..registry import registry
from ..stats import known_queues
from ..text import storable
from .acting import add_user, operator
from .selection import bad_input, job_name, queues

HELP = "Pause a queue or a job name: no worker claims its jobs until it is resumed."
REASON_MAX_LENGTH = Pause._meta.get_field("reason").max_length or 255


def add_target(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--queue QUEUE`` or ``--name NAME``: exactly one."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--queue", type=_one_queue, metavar="QUEUE", help=f"{verb} this queue.")
    target.add_argument(
        "--name", type=job_name, metavar="NAME", help=f"{verb} the jobs of this registered name."
    )


def target(options: dict[str, Any]) -> tuple[str, str, str]:
    """(kind, value, label) of the pause the options name."""
    if options["queue"] is not None:
        return Pause.Kind.QUEUE, options["queue"], f"the queue {options['queue']!r}"
    return Pause.Kind.NAME, options["name"], f"the job {options['name']!r}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, "Pause")
    parser.add_argument(
        "--reason", default="",
        help=f"Why: the admin, `jobs stats` and `jobs show` show it with the pause (at most "
        f"{REASON_MAX_LENGTH} characters).",
    )
    add_user(parser)


def handle(command: BaseCommand, **options: Any) -> None:
    kind, value, label = target(options)
    who = operator(options)
    reason = storable(options["reason"].strip())
    if len(reason) > REASON_MAX_LENGTH:
        raise bad_input(f"--reason has {len(reason)} characters; at most {REASON_MAX_LENGTH} fit.")
    if kind == Pause.Kind.NAME:
        try:
            registry.lookup(value)
        except JobNotRegistered:
            raise bad_input(
                f"--name: no job is registered as {value!r}.{registry.did_you_mean(value)} "
                "Only registered jobs can be paused by name."
            ) from None
    pauses = Pause.objects.db_manager(jobs_settings.DATABASE)
    if pauses.filter(kind=kind, value=value).exists():
        command.stdout.write(f"Nothing to do: {label} was already paused.")
        return
    if kind == Pause.Kind.QUEUE:
        _warn_unknown_queue(command, value)
    pause = pauses.pause(kind, value, reason)
    message = f"Paused from the command line by {who.name}." + (f" Reason: {reason}" if reason else "")
    audit.log_objects(who.user, [pause], audit.ADDITION, message)
    command.stdout.write(
        f"Paused {label}: workers finish what they are running and claim no more of its jobs "
        "until it is resumed."
    )


def _one_queue(text: str) -> str:
    (queue, *more) = queues(text)
    if more:
        raise argparse.ArgumentTypeError("one queue at a time")
    return queue


def _warn_unknown_queue(command: BaseCommand, queue: str) -> None:
    """A queue no code or worker names may be a typo: pause it anyway (jobs may come to it), but
    say so, with the closest known queue."""
    workers = Worker.objects.using(jobs_settings.DATABASE).values_list("queues", flat=True)
    known = known_queues() | {q for listed in workers for q in (listed or [])}
    if queue in known:
        return
    close = difflib.get_close_matches(queue, sorted(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    command.stderr.write(
        f"Note: no registered job and no running worker names the queue {queue!r}.{hint}"
    )
