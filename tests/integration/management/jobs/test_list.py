"""``jobs list``: filters, the table and JSON, and bad input refused with exit code 2."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs.models import JobStatus
from tests.support.cli import jobs
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db

RECORD = "tests.testapp.jobs.record"


def _ids(out: str) -> list[int]:
    return [row["id"] for row in json.loads(out)]


def test_list__filters_combine_and_newest_come_first() -> None:
    wanted = [JobFactory(status=JobStatus.DEAD, queue="emails") for _ in range(2)]
    JobFactory(status=JobStatus.DEAD, queue="default")
    JobFactory(status=JobStatus.QUEUED, queue="emails")
    JobFactory(status=JobStatus.DEAD, queue="emails", name="tests.testapp.jobs.noop")

    ran = jobs("list", "--status", "dead", "--queue", "emails", "--name", RECORD, "--json")

    assert ran.code == 0, ran.err
    assert _ids(ran.out) == [wanted[1].pk, wanted[0].pk]


def test_list__repeated_and_comma_separated_values_are_alternatives() -> None:
    queued = JobFactory(status=JobStatus.QUEUED)
    retrying = JobFactory(status=JobStatus.RETRYING)
    dead = JobFactory(status=JobStatus.DEAD)
    JobFactory(status=JobStatus.SUCCEEDED)

    by_comma = jobs("list", "--status", "queued,retrying", "--status", "dead", "--json")

    assert sorted(_ids(by_comma.out)) == sorted([queued.pk, retrying.pk, dead.pk])


def test_list__json_is_one_valid_document_with_each_jobs_fields() -> None:
    job = JobFactory(status=JobStatus.DEAD, last_error="ValueError: boom", attempts=3)

    (row,) = json.loads(jobs("list", "--json").out)

    assert row["id"] == job.pk and row["name"] == RECORD and row["status"] == "dead"
    assert row["attempts"] == 3 and row["last_error"] == "ValueError: boom"
    assert row["created_at"] == job.created_at.isoformat()


def test_list__table_has_a_row_per_job_and_says_when_there_are_more() -> None:
    made = [JobFactory(last_error="KeyError: 'sku'\nTraceback…") for _ in range(3)]

    ran = jobs("list", "--limit", "2")

    header, *rows, footer = ran.out.strip().splitlines()
    assert header.split()[:4] == ["ID", "NAME", "QUEUE", "STATUS"]
    assert [int(r.split()[0]) for r in rows] == [made[2].pk, made[1].pk]
    assert "KeyError: 'sku'" in rows[0] and "Traceback" not in rows[0]
    assert "there are more" in footer


def test_list__since_takes_an_age_or_an_iso_datetime() -> None:
    now = timezone.now()
    old = JobFactory(created_at=now - timedelta(hours=3))
    new = JobFactory(created_at=now - timedelta(minutes=5))

    assert _ids(jobs("list", "--since", "2h", "--json").out) == [new.pk]
    assert _ids(jobs("list", "--since", "1d", "--json").out) == [new.pk, old.pk]
    iso = (now - timedelta(hours=4)).isoformat()
    assert _ids(jobs("list", "--since", iso, "--json").out) == [new.pk, old.pk]


def test_list__matching_nothing_is_not_an_error() -> None:
    JobFactory(status=JobStatus.QUEUED)

    ran = jobs("list", "--status", "dead")

    assert (ran.code, ran.out.strip()) == (0, "No job matches.")
    assert json.loads(jobs("list", "--status", "dead", "--json").out) == []


def test_list__a_name_no_code_registers_still_lists_its_stored_jobs() -> None:
    # A job renamed or removed from the code: its old rows are still worth finding.
    gone = JobFactory(name="shop.retired_job", status=JobStatus.DEAD)

    ran = jobs("list", "--name", "shop.retired_job", "--json")

    assert (ran.code, _ids(ran.out)) == (0, [gone.pk])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--status", "dea"], "did you mean 'dead'?"),
        (["--status", ","], "needs a status"),
        (["--since", "yesterday"], "can't read 'yesterday'; give e.g. 30m, 2h, 1d"),
        (["--since", "2026-13-01"], "is not a valid date or time"),
        (["--since", "0h"], "is no time ago"),
        (["--since", "99999999999d"], "further back than any date"),
        (["--since", "999999w"], "further back than any date"),
        (["--limit", "0"], "at least 1, not '0'"),
        (["--limit", "ten"], "at least 1, not 'ten'"),
        (["--queue", "x" * 101], "over the limit of 100"),
        (["--name", RECORD[:-1] + "x"], f"Did you mean {RECORD!r}?"),
        (["--queue", "emials"], "Did you mean 'emails'?"),
    ],
)
def test_list__bad_input_exits_2_with_what_to_do(args: list[str], says: str) -> None:
    ran = jobs("list", *args)

    assert ran.code == 2, ran
    assert says in ran.err
    assert "Traceback" not in ran.err + ran.out
