"""``manage.py prunejobs``: delete finished jobs past retention now (workers also do it)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from django_jobs.conf import jobs_settings
from django_jobs.services.prune import prune, retention
from django_jobs.text import duration


class Command(BaseCommand):
    help = "Delete finished jobs older than DJANGO_JOBS['RETENTION'], in bounded batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")
        parser.add_argument("--batch", type=int, default=None, help="Rows per DELETE statement.")

    def handle(self, *args: Any, **options: Any) -> None:
        batch = options["batch"]
        if batch is not None and batch < 1:
            raise CommandError(f"--batch must be at least 1, not {batch}.")
        counts = prune(jobs_settings.DATABASE, now=timezone.now(), dry_run=options["dry_run"], batch=batch)
        verb = "would delete" if options["dry_run"] else "deleted"
        for status, keep in retention().items():
            if keep is None:
                self.stdout.write(f"{status}: kept forever")
            else:
                self.stdout.write(
                    f"{status}: {verb} {counts.get(status, 0)} (older than {duration(keep.total_seconds())})"
                )
