"""``jobs deadletter``: move queued, retrying and stopped jobs to ``dead`` with a note, as the
admin's Dead-letter does."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand

from ..text import storable
from ..verbs import NOTE_MAX_LENGTH, VERBS
from . import acting
from .selection import bad_input

HELP = "Move queued, retrying or stopped jobs to dead, with a note, by ids or filters."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    acting.add_arguments(parser)
    parser.add_argument(
        "--note", default="",
        help="Why, for whoever finds these jobs later: it goes into each job's history "
        f"(at most {NOTE_MAX_LENGTH} characters).",
    )


def handle(command: BaseCommand, **options: Any) -> None:
    # A note from a shell may hold bytes that aren't UTF-8, which jsonb refuses.
    note = storable(options["note"].strip())
    if len(note) > NOTE_MAX_LENGTH:
        raise bad_input(f"--note has {len(note)} characters; at most {NOTE_MAX_LENGTH} are kept.")
    acting.act(command, VERBS["dead-letter"], options, note, note=note)
