"""``jobs stats``: what the admin's overview page shows (queues, workers, pauses, limits, stored
jobs, schedules that don't fire), from the same functions in django_jobs/stats.py."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from .. import stats
from ..conf import jobs_settings
from ..models import Pause
from ..readable import format_age
from . import output

HELP = "Show what the admin overview shows: queues, workers, pauses, limits and stored jobs."
#: The finished statuses the last hour is counted for, in the order the overview shows them.
RECENT_STATUSES = ("succeeded", "stopped", "dead")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")


def gather(now: datetime) -> dict[str, Any]:
    """Everything the overview shows, as plain data."""
    using = jobs_settings.DATABASE
    workers = stats.worker_stats(using, now=now)
    worker_queues = {q for w in workers for q in (w.worker.queues or [])}
    queues = stats.queue_stats(using, now=now, extra_queues=worker_queues)
    paused_queues, paused_names = stats.paused(using)
    stored = stats.stored_finished(using)
    return {
        "now": now,
        "recent_minutes": int(stats.RECENT.total_seconds() // 60),
        "queues": [
            {
                "queue": q.queue, "queued": q.queued, "retrying": q.retrying,
                "running": q.running, "ready": q.ready,
                "lag_seconds": round(q.lag(now).total_seconds(), 3),
                "recent": {s: q.recent.get(s, 0) for s in RECENT_STATUSES}, "paused": q.paused,
            }
            for q in queues
        ],
        "workers": [
            {
                "worker_id": w.worker.worker_id, "hostname": w.worker.hostname,
                "pid": w.worker.pid, "queues": list(w.worker.queues or []),
                "concurrency": w.worker.concurrency, "started_at": w.worker.started_at,
                "heartbeat_age_seconds": round(w.heartbeat_age.total_seconds(), 3),
                "silent": w.silent,
                "running": [{"id": j["id"], "name": j.get("name"), "started_at": j.get("started_at")}
                            for j in w.running],
            }
            for w in workers
        ],
        "paused": {
            "queues": [_pause(p) for p in paused_queues],
            "names": [_pause(p) for p in paused_names],
        },
        "limits": [
            {"scope": u.scope, "target": u.target, **u.in_words(), "note": u.note, "full": u.full}
            for u in stats.limit_usage(using, now=now)
        ],
        "stored_finished": {"counts": stored.counts, "estimated": sorted(stored.estimated)},
        "schedule_problems": [
            {"schedule": p.schedule.name, "job": p.schedule.job_name, "problem": p.problem,
             "message": p.message}
            for p in stats.schedule_problems(using, now=now)
        ],
    }


def _pause(pause: Pause) -> dict[str, Any]:
    return {"value": pause.value, "reason": pause.reason, "since": pause.created_at}


def handle(command: BaseCommand, **options: Any) -> None:
    now = timezone.now()
    data = gather(now)
    if options["json"]:
        output.write_json(command, data)
        return
    write = command.stdout.write
    recent = f"{data['recent_minutes']} min"
    write("Queues")
    output.table(
        command,
        ("QUEUE", "QUEUED", "RETRYING", "RUNNING", "READY", "LAG",
         *(f"{s.upper()} ({recent})" for s in RECENT_STATUSES), "PAUSED"),
        [
            (q["queue"], q["queued"], q["retrying"], q["running"], q["ready"],
             format_age(timedelta(seconds=q["lag_seconds"])) if q["ready"] else "",
             *(q["recent"][s] for s in RECENT_STATUSES), "paused" if q["paused"] else "")
            for q in data["queues"]
        ],
    )
    write("")
    write("Workers")
    if not data["workers"]:
        write("  No worker is running: start one with `manage.py runjobs`.")
    else:
        output.table(
            command,
            ("WORKER", "HOST", "PID", "QUEUES", "CONCURRENCY", "BUSY", "STARTED", "HEARTBEAT",
             "RUNNING"),
            [
                (w["worker_id"], w["hostname"], w["pid"], ", ".join(w["queues"]) or "every queue",
                 w["concurrency"], len(w["running"]), w["started_at"],
                 format_age(timedelta(seconds=w["heartbeat_age_seconds"])) + " ago"
                 + (" (silent: its jobs will be rescued)" if w["silent"] else ""),
                 ", ".join(f"#{j['id']}" for j in w["running"]))
                for w in data["workers"]
            ],
        )
    write("")
    write("Paused")
    pauses = [("queue", p) for p in data["paused"]["queues"]]
    pauses += [("job", p) for p in data["paused"]["names"]]
    if not pauses:
        write("  Nothing is paused.")
    for kind, p in pauses:
        reason = f" ({p['reason']})" if p["reason"] else ""
        write(f"  {kind} {p['value']!r} since {output.cell(p['since'])}{reason}")
    if data["limits"]:
        write("")
        write("Limits")
        output.table(
            command,
            ("SCOPE", "TARGET", "CONCURRENCY", "RATE", "KEYS", "SET BY", "NOTE"),
            [
                (u["scope"], u["target"], u["concurrency"], u["rate"], u["keys"], u["source"],
                 u["note"])
                for u in data["limits"]
            ],
        )
    write("")
    stored = data["stored_finished"]
    counts = ", ".join(
        f"{status} {count:,}" + (" (estimated)" if status in stored["estimated"] else "")
        for status, count in stored["counts"].items()
    )
    write(f"Finished jobs stored: {counts}")
    if data["schedule_problems"]:
        write("")
        write("Schedules that don't fire as they should")
        output.table(
            command,
            ("SCHEDULE", "JOB", "PROBLEM", "MESSAGE"),
            [(p["schedule"], p["job"], p["problem"], p["message"])
             for p in data["schedule_problems"]],
        )
