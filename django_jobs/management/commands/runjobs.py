"""``manage.py runjobs``: parse options, build a WorkerLoop, run it."""

from __future__ import annotations

import math
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_jobs.conf import jobs_settings
from django_jobs.registry import queue_problem
from django_jobs.worker import MAX_CONCURRENCY, WorkerLoop, available_cpus, default_worker_id


def _positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CommandError(f"{name} takes a whole number, not {value!r}.") from None
    if number < 1:
        raise CommandError(f"{name} must be at least 1, not {number}.")
    return number


class Command(BaseCommand):
    help = "Run a worker that claims and runs queued jobs until stopped (SIGTERM/SIGINT)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue", action="append", dest="queues", default=[], metavar="NAME",
            help="Only run jobs from this queue (repeatable). Default: every queue.",
        )
        parser.add_argument(
            "--concurrency", default=None, metavar="N",
            help=f"Jobs run at once, each in its own child process (at most {MAX_CONCURRENCY}). "
                 f"Default: one per CPU this process may use (its CPU affinity, capped by a cgroup "
                 f"CPU limit).",
        )
        parser.add_argument("--burst", action="store_true", help="Exit once no job is ready.")
        parser.add_argument("--max-jobs", default=None, metavar="N", help="Exit after claiming N jobs.")
        parser.add_argument("--worker-id", default=None, help="Name for this worker. Default: host:pid.")
        parser.add_argument(
            "--no-scheduler", action="store_false", dest="scheduler",
            help="Don't fire cron schedules from this worker.",
        )
        parser.add_argument(
            "--grace", default="25", metavar="SECONDS",
            help="On SIGTERM/SIGINT, seconds running jobs get to finish before they are handed back.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        queues: list[str] = []
        for queue in options["queues"]:
            queues.extend(q.strip() for q in queue.split(",") if q.strip())
        if options["queues"] and not queues:
            raise CommandError("--queue needs a queue name.")
        for queue in queues:
            problem = queue_problem(queue)
            if problem:
                raise CommandError(f"--queue: {problem}.")
        concurrency = options["concurrency"]
        if concurrency is None:
            concurrency = jobs_settings.CONCURRENCY or available_cpus()
        concurrency = _positive_int("--concurrency", concurrency)
        if concurrency > MAX_CONCURRENCY:
            raise CommandError(
                f"--concurrency is at most {MAX_CONCURRENCY}, not {concurrency}: each child is a "
                f"process with its own database connection. Run more workers instead."
            )
        max_jobs = options["max_jobs"]
        if max_jobs is not None:
            max_jobs = _positive_int("--max-jobs", max_jobs)
        try:
            grace = float(options["grace"])
        except ValueError:
            raise CommandError(f"--grace takes seconds, not {options['grace']!r}.") from None
        if not math.isfinite(grace) or grace < 0:
            raise CommandError(f"--grace takes a finite number of seconds >= 0, not {options['grace']!r}.")
        worker_id = options["worker_id"] or default_worker_id()
        if not worker_id.strip():
            raise CommandError("--worker-id can't be empty.")
        worker = WorkerLoop(
            queues=queues,
            concurrency=concurrency,
            burst=options["burst"],
            max_jobs=max_jobs,
            worker_id=worker_id,
            grace=grace,
            scheduler=options["scheduler"],
        )
        code = worker.run()
        if code:
            raise CommandError(worker.failure or f"the worker stopped with exit code {code}", returncode=code)
