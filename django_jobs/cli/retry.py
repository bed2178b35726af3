"""``jobs retry``: queue dead, stopped and retrying jobs to run now, as the admin's Retry does."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand

from ..verbs import VERBS
from . import acting

HELP = "Queue dead, stopped or retrying jobs to run now, by ids or filters."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    acting.add_arguments(parser)


def handle(command: BaseCommand, **options: Any) -> None:
    acting.act(command, VERBS["retry"], options)
