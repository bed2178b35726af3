"""``manage.py jobs SUBCOMMAND``: the operator's verbs from a shell. A dispatcher only: each
subcommand is a module of django_jobs/cli/ with ``HELP``, ``add_arguments`` and ``handle``."""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from django_jobs.cli import (
    BAD_INPUT,
    deadletter,
    health,
    list_,
    pause,
    resume,
    retry,
    show,
    stats,
    stop,
)

SUBCOMMANDS: dict[str, ModuleType] = {
    "list": list_,
    "show": show,
    "retry": retry,
    "stop": stop,
    "deadletter": deadletter,
    "pause": pause,
    "resume": resume,
    "stats": stats,
    "health": health,
}


class SubcommandParser(CommandParser):
    """A subcommand's parser: bad input exits 2 through call_command too, as on the command line
    (where argparse exits 2 after printing the usage)."""

    def error(self, message: str) -> Any:
        if self.called_from_command_line:
            super().error(message)
        raise CommandError(f"Error: {message}", returncode=BAD_INPUT)


class Command(BaseCommand):
    help = "Find, inspect, retry, stop and dead-letter jobs, pause queues, and see the overview."
    # The stream a confirmation is read from; call_command(..., stdin=...) in tests.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        # Django's own options (--settings, --traceback, -v…) on each subcommand too, so that
        # `jobs list --traceback` works as well as `jobs --traceback list`.
        shared = [
            a for a in parser._actions if a.option_strings and a.dest not in ("help", "version")
        ]
        subparsers = parser.add_subparsers(
            parser_class=SubcommandParser, dest="subcommand", metavar="SUBCOMMAND", required=True,
            title="subcommands", description="`manage.py jobs SUBCOMMAND --help` for each.",
        )
        for name, module in SUBCOMMANDS.items():
            sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
            module.add_arguments(sub)
            for action in shared:
                _share(sub, action)

    def handle(self, *args: Any, **options: Any) -> None:
        module = SUBCOMMANDS[options["subcommand"]]
        try:
            module.handle(self, **options)
        except DatabaseError as exc:
            if options.get("traceback"):
                raise
            raise CommandError(
                f"The database refused the command or couldn't be reached:\n{str(exc).strip()}\n"
                "(--traceback shows where.)",
                returncode=1,
            ) from exc


def _share(parser: argparse.ArgumentParser, action: argparse.Action) -> None:
    """Add the main parser's ``action`` to a subcommand's parser, without a default of its own
    (which would overwrite what was given before the subcommand) and hidden from its help."""
    kwargs: dict[str, Any] = {"dest": action.dest, "default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
    if action.nargs == 0:
        kwargs.update(action="store_const", const=action.const)
    else:
        kwargs.update(type=action.type, choices=action.choices)
    parser.add_argument(*action.option_strings, **kwargs)
