"""``manage.py jobs health``: a liveness check for this host's workers (exit 0, or 1 and why)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ..conf import jobs_settings
from ..services.health import check, default_stale_after

HELP = "Exit 0 if this host's workers (or --worker-id's) are alive and their loops turning, else 1 and why."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--worker-id", default=None, help="Check only this worker. Default: every worker on this host.")
    parser.add_argument(
        "--stale-after", default=None, metavar="SECONDS",
        help="How long a loop may go without turning, or a heartbeat without beating. "
             "Default: half of RESCUE_AFTER (at least two HEARTBEAT_INTERVALs).",
    )
    parser.add_argument("--database", default=None, help="The jobs database alias. Default: the DATABASE setting.")


def handle(command: BaseCommand, **options: Any) -> None:
    stale_after = default_stale_after()
    if options.get("stale_after") is not None:
        try:
            stale_after = float(options["stale_after"])
        except ValueError:
            raise CommandError(f"--stale-after takes seconds, not {options['stale_after']!r}.") from None
        if not math.isfinite(stale_after) or stale_after <= 0:
            raise CommandError(f"--stale-after takes a number of seconds > 0, not {options['stale_after']!r}.")
    using = options.get("database") or jobs_settings.DATABASE
    found = check(using, options.get("worker_id"), stale_after=stale_after)
    problems = [h.problem for h in found if h.problem]
    if problems:
        raise CommandError("; ".join(problems), returncode=1)
    for health in found:
        command.stdout.write(f"ok worker={health.worker_id} pid={health.pid} loop_turned={health.loop_age:.1f}s ago")
