"""``manage.py jobs <subcommand>``: the operator's commands, one module each in django_jobs.cli."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_jobs.cli import health

SUBCOMMANDS: dict[str, ModuleType] = {"health": health}


class Command(BaseCommand):
    help = "Operate django-jobs: " + ", ".join(SUBCOMMANDS) + "."

    def add_arguments(self, parser: CommandParser) -> None:
        subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for name, module in SUBCOMMANDS.items():
            sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
            module.add_arguments(sub)

    def handle(self, *args: Any, **options: Any) -> None:
        SUBCOMMANDS[options.pop("subcommand")].handle(self, **options)
