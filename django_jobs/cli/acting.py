"""What ``retry``, ``stop`` and ``deadletter`` share: select the jobs, say what would change,
ask when it is more than one job, then call the queryset verb and report what it did."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from ..verbs import Verb, preview
from . import output
from .selection import Selection, add_confirmation, add_filters, bad_input, confirm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ids or filters that select the jobs, ``--dry-run`` and ``--yes``."""
    add_filters(parser, ids=True)
    add_confirmation(parser)


def operator() -> str:
    """Who is at the keyboard, for a stopped job's last error: the login name, if there is one."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name: a container running as an unnamed uid
        return "an operator"


def act(command: BaseCommand, verb: Verb, options: dict[str, Any], *arguments: str) -> None:
    """Apply ``verb`` (with ``arguments``: a reason or a note) to the jobs the options select."""
    selection = Selection.from_options(options)
    if not selection.filtered:
        raise bad_input(
            f"Say which jobs to {verb.label.lower()}: give their ids, or filters (--status, "
            "--name, --queue, --since), as for `jobs list`."
        )
    if selection.ids:
        missing = selection.missing_ids()
        if missing:
            listed = ", ".join(f"#{i}" for i in missing)
            raise bad_input(f"No job has the id {listed}; nothing changed.")
    jobs = selection.jobs(timezone.now())
    if selection.limit is not None:
        # The newest N now, held as ids: the jobs confirmed are the jobs changed, even if newer
        # ones match by the time the answer comes.
        jobs = jobs.model.objects.using(jobs.db).filter(
            pk__in=list(jobs.values_list("pk", flat=True)[: selection.limit])
        )
    shown = preview(verb, jobs)
    if not shown.total:
        problem = selection.why_empty()
        if problem:
            raise bad_input(problem)
        command.stdout.write("No job matches; nothing changed.")
        return
    output.table(
        command,
        ("NAME", "STATUS", "JOBS", "WHAT HAPPENS"),
        [(r["name"], r["status"], r["count"], r["outcome"]) for r in shown.rows],
    )
    command.stdout.write(shown.summary)
    if options["dry_run"]:
        command.stdout.write("Dry run: nothing changed.")
        return
    if shown.total > 1:
        confirm(command, options, f"{verb.label} these {shown.total} jobs?")
    result = getattr(jobs, verb.name)(*arguments)
    command.stdout.write(verb.report(result))
