"""``jobs show ID``: one job as its admin page has it: fields, arguments, result, every attempt
with its traceback and, for a waiting job, why it isn't running."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from ..conf import jobs_settings
from ..diagnose import diagnose
from ..models import READY_STATUSES, Job, JobStatus
from ..readable import format_duration, moment, run_time
from . import output
from .selection import bad_input, job_id

HELP = "Show one job: its fields, arguments, every attempt with its traceback, and what holds it."
#: The columns shown as "label  value", in this order; empty ones are left out.
FIELDS = (
    ("name", "Name"), ("status", "Status"), ("queue", "Queue"), ("priority", "Priority"),
    ("unique_key", "Unique key"), ("worker_id", "Worker"), ("concurrency_key", "Concurrency key"),
    ("rate_key", "Rate key"), ("sequence_key", "Sequence key"), ("created_at", "Created"),
    ("run_at", "Run at"), ("started_at", "Started"), ("finished_at", "Finished"),
    ("stop_requested_at", "Stop requested"), ("scheduled_for", "Scheduled for"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=job_id, metavar="ID", help="The job's id (12 or #12).")
    parser.add_argument(
        "--json", action="store_true",
        help="Print the job as one JSON object (with its history, and `diagnosis` when waiting).",
    )


def handle(command: BaseCommand, **options: Any) -> None:
    job = Job.objects.using(jobs_settings.DATABASE).filter(pk=options["id"]).first()
    if job is None:
        raise bad_input(f"No job has the id #{options['id']}.")
    now = timezone.now()
    reasons = diagnose(job, now=now) if job.status in READY_STATUSES else None
    if options["json"]:
        data = {f.attname: getattr(job, f.attname) for f in Job._meta.concrete_fields}
        data["schedule"] = str(job.schedule) if job.schedule_id is not None else None
        if reasons is not None:
            data["diagnosis"] = [{"code": r.code, "message": r.message} for r in reasons]
        output.write_json(command, data)
        return
    write = command.stdout.write
    write(f"Job #{job.pk}")
    for field, label in FIELDS:
        value = getattr(job, field)
        if value is None or value == "":
            continue
        if field == "status" and job.status == JobStatus.RUNNING and job.stop_requested_at:
            value = f"{value} (stopping)"
        text = moment(value) if isinstance(value, datetime) else str(value)
        write(f"  {label + ':':<17}{text}")
    write(f"  {'Attempts:':<17}{job.attempts} of {job.max_attempts}")
    running = job.status == JobStatus.RUNNING
    took = run_time(job.started_at, job.finished_at, running=running, now=now)
    write(f"  {'Duration:':<17}{took}")
    if job.schedule_id is not None:
        write(f"  {'Schedule:':<17}{job.schedule}")
    if job.progress:
        write(f"  {'Progress:':<17}{json.dumps(job.progress, ensure_ascii=False)}")
    write("")
    write("Arguments")
    write(_indented(f"positional: {_json(job.args)}"))
    write(_indented(f"keyword: {_json(job.kwargs)}"))
    if job.result is not None:
        write("")
        write("Result")
        write(_indented(_json(job.result)))
    if reasons is not None:
        write("")
        write("Why isn't it running?")
        for reason in reasons:
            write(f"  - {reason.message} [{reason.code}]")
    write("")
    write("History")
    entries = job.history if isinstance(job.history, list) else []
    if not entries:
        write("  No attempt has finished yet.")
    for entry in entries:
        write(_indented(_entry(entry)))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _indented(text: str, by: str = "  ") -> str:
    return "\n".join(by + line for line in text.splitlines())


def _entry(entry: Any) -> str:
    """One history entry: an attempt (outcome, worker, times, error and traceback) or an event."""
    if not isinstance(entry, dict):
        return f"? {json.dumps(entry, default=str)}"
    if "event" in entry:
        note = f": {entry['note']}" if entry.get("note") else ""
        return f"{entry['event']} at {moment(entry.get('at'))}{note}"
    duration = entry.get("duration")
    took = format_duration(timedelta(seconds=duration)) if isinstance(duration, float | int) else "—"
    lines = [
        f"Attempt {entry.get('attempt', '?')}: {entry.get('outcome', '?')} on worker "
        f"{entry.get('worker') or '—'}, started {moment(entry.get('started_at'))}, finished "
        f"{moment(entry.get('finished_at'))} ({took})"
    ]
    for key, label in (("retry_at", "next attempt due"), ("run_at", "runs again at")):
        if entry.get(key):
            lines.append(f"  {label} {moment(entry[key])}")
    for key, label in (("reason", "reason"), ("rescued_by", "rescued by")):
        if entry.get(key):
            lines.append(f"  {label}: {entry[key]}")
    error = entry.get("error")
    if isinstance(error, dict):
        lines.append(f"  {error.get('class', '')}: {error.get('message', '')}")
        traceback = str(error.get("traceback") or "").rstrip()
        if traceback:
            lines.append(_indented(traceback, "    "))
    return "\n".join(lines)
