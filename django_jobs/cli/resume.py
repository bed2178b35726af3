"""``jobs resume``: lift the pause on a queue or a job name, as the admin's resume buttons do."""

from __future__ import annotations

import argparse
import difflib
from typing import Any

from django.core.management.base import BaseCommand

from .. import audit
from ..conf import jobs_settings
from ..models import Pause
from .acting import add_user, operator
from .pause import add_target, target

HELP = "Resume a paused queue or job name: workers claim its jobs again."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_target(parser, "Resume")
    add_user(parser)


def handle(command: BaseCommand, **options: Any) -> None:
    kind, value, label = target(options)
    who = operator(options)
    pauses = Pause.objects.db_manager(jobs_settings.DATABASE)
    pause = pauses.filter(kind=kind, value=value).first()
    if pause is not None and pauses.resume(kind, value):
        audit.log_objects(who.user, [pause], audit.DELETION, f"Resumed from the command line by {who.name}.")
        command.stdout.write(f"Resumed {label}: workers claim its jobs again.")
        return
    paused = list(pauses.filter(kind=kind).values_list("value", flat=True))
    close = difflib.get_close_matches(value, paused, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    command.stdout.write(f"Nothing to do: {label} was not paused.{hint}")
