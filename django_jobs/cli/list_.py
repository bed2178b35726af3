"""``jobs list``: the newest jobs matching the filters, as a table or JSON."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from ..models import Job, JobStatus
from ..readable import first_line, format_duration, run_time
from . import output
from .selection import Selection, add_filters, bad_input

HELP = "List the newest jobs matching filters (status, name, queue, age), as a table or JSON."
#: Rows shown without --limit: what one page of the admin's list shows.
DEFAULT_LIMIT = 50
#: The columns a row has in --json; the arguments, result and history are `jobs show`'s.
FIELDS = (
    "id", "name", "queue", "status", "priority", "attempts", "max_attempts", "run_at",
    "created_at", "started_at", "finished_at", "worker_id", "unique_key", "last_error",
    "stop_requested_at",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_filters(parser, ids=False)
    parser.add_argument("--json", action="store_true", help="Print a JSON array of jobs.")


def handle(command: BaseCommand, **options: Any) -> None:
    selection = Selection.from_options(options)
    now = timezone.now()
    limit = selection.limit or DEFAULT_LIMIT
    # One more than shown, to know whether there are more.
    rows = list(selection.jobs(now).only(*FIELDS)[: limit + 1])
    more, rows = len(rows) > limit, rows[:limit]
    if not rows:
        problem = selection.why_empty()
        if problem:
            raise bad_input(problem)
    if options["json"]:
        output.write_json(command, [{f: getattr(job, f) for f in FIELDS} for job in rows])
        return
    if not rows:
        command.stdout.write("No job matches.")
        return
    output.table(
        command,
        ("ID", "NAME", "QUEUE", "STATUS", "ATTEMPTS", "RUN AT", "AGE", "DURATION", "LAST ERROR"),
        [
            (
                job.pk, job.name, job.queue, _status(job), f"{job.attempts}/{job.max_attempts}",
                job.run_at, format_duration(now - job.created_at),
                run_time(
                    job.started_at, job.finished_at, running=job.status == JobStatus.RUNNING,
                    now=now,
                ),
                first_line(job.last_error),
            )
            for job in rows
        ],
    )
    if more:
        command.stdout.write(
            f"The {limit} newest shown; there are more: narrow the filters or raise --limit."
        )


def _status(job: Job) -> str:
    if job.status == JobStatus.RUNNING and job.stop_requested_at:
        return "running (stopping)"
    return str(job.status)

