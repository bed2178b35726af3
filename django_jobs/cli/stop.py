"""``jobs stop``: end waiting jobs ``stopped`` and ask running ones to stop, as the admin's Stop
does."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand

from ..verbs import VERBS
from . import acting

HELP = "Stop queued or retrying jobs at once and ask running ones to stop, by ids or filters."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    acting.add_arguments(parser)


def handle(command: BaseCommand, **options: Any) -> None:
    # What a waiting job's last_error will say: who stopped it, as the admin writes it.
    who = acting.operator(options)
    acting.act(command, VERBS["stop"], options, f"stopped by {who.name} from the command line", who=who)
