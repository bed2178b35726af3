"""What ``retry``, ``stop`` and ``deadletter`` share: select the jobs, say what would change,
ask when it is more than one job, then call the queryset verb and report what it did."""

from __future__ import annotations

import argparse
import getpass
from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from .. import audit
from ..verbs import Verb, preview
from . import output
from .selection import Selection, add_confirmation, add_filters, bad_input, confirm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ids or filters that select the jobs, ``--dry-run``, ``--yes`` and ``--user``."""
    add_filters(parser, ids=True)
    add_confirmation(parser)
    add_user(parser)


def add_user(parser: argparse.ArgumentParser) -> None:
    """``--user USERNAME``: who acts, for the audit trail."""
    parser.add_argument(
        "--user", metavar="USERNAME", default="",
        help="The site user you act as: each object changed gets an entry in the admin's "
        "\"Recent actions\" and history pages, and the jobs' history names you. Default: your "
        "login name, when a user of that name exists (else no admin entry is written).",
    )


@dataclass(frozen=True)
class Operator:
    """Who acts from the command line: the name a job's history and last error show, and the
    site user the admin's audit trail logs (None: no user matches, nothing is logged there)."""

    name: str
    user: Any | None


def login_name() -> str:
    """The login name of whoever runs the command, or "" when there is none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name: a container running as an unnamed uid
        return ""


def operator(options: dict[str, Any]) -> Operator:
    """The operator: the ``--user`` given (which must exist), else the login name."""
    given = (options.get("user") or "").strip()
    if given:
        if not audit.enabled():
            raise bad_input(
                "--user: this project keeps no audit trail (it needs django.contrib.admin, "
                "django.contrib.auth and django.contrib.contenttypes in INSTALLED_APPS). Leave --user out."
            )
        user = audit.find_user(given)
        if user is None:
            raise bad_input(
                f"--user: no active user is named {given!r}. Give the username you log in to "
                "the admin with, or leave --user out."
            )
        return Operator(given, user)
    login = login_name()
    return Operator(login or "an operator", audit.find_user(login))


def act(
    command: BaseCommand, verb: Verb, options: dict[str, Any], *arguments: str,
    who: Operator | None = None, note: str = "",
) -> None:
    """Apply ``verb`` (with ``arguments``: a reason or a note) to the jobs the options select,
    as ``who`` (by default the options' operator); log each job changed for the audit trail."""
    who = who or operator(options)
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
    result = getattr(jobs, verb.name)(*arguments, by=who.name)
    audit.log_jobs(who.user, result, verb.audit_message("the command line", note))
    command.stdout.write(verb.report(result))
