"""The benchmark's own table: a row per job for section K's jobs to write to."""

from __future__ import annotations

from django.db import models


class Counter(models.Model):
    """A row that bench.orm_write increments; seeded by the harness (bench/mixes.py), one per job."""

    counter = models.IntegerField(default=0)

    class Meta:
        db_table = "bench_counter"
