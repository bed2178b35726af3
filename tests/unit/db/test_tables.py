"""db/tables.py: the status predicates every statement shares, spelled once (no database)."""

from __future__ import annotations

from django_jobs.db import tables
from django_jobs.models import ACTIVE_STATUSES, READY_STATUSES, JobStatus


def test_status_in__literals_in_the_order_given() -> None:
    assert tables.status_in([JobStatus.DEAD, JobStatus.QUEUED]) == "status IN ('dead', 'queued')"


def test_status_is__one_literal() -> None:
    assert tables.status_is(JobStatus.RUNNING) == "status = 'running'"


def test_predicates__match_the_model_s_status_groups() -> None:
    assert tables.READY_SQL == "status IN ('queued', 'retrying')"
    assert tables.ACTIVE_SQL == tables.status_in(ACTIVE_STATUSES)
    assert tables.READY_SQL == tables.status_in(READY_STATUSES)
