"""cli/selection.py: how ids, statuses, queues and ``--since`` are read (no database)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from django_jobs.cli.selection import job_id, job_name, queues, since, statuses


@pytest.mark.parametrize(
    ("text", "ago"),
    [("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)),
     ("1d", timedelta(days=1)), ("2W", timedelta(weeks=2)), (" 3 h ", timedelta(hours=3))],
)
def test_since__an_age_is_a_timedelta(text: str, ago: timedelta) -> None:
    assert since(text) == ago


@override_settings(USE_TZ=True, TIME_ZONE="Europe/Paris")
def test_since__an_iso_date_or_datetime_without_offset_is_on_the_sites_clock() -> None:
    assert since("2026-12-06T08:00") == datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
    assert since("2026-12-06") == datetime(2026, 12, 5, 23, 0, tzinfo=UTC)
    assert since("2026-12-06T08:00:00+00:00") == datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "yesterday", "2h30m", "-1h", "0d", "2026-02-30", "12:00"])
def test_since__anything_else_is_refused_with_examples(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        since(text)


def test_statuses__comma_separated_and_case_insensitive() -> None:
    assert statuses("Dead, retrying") == ["dead", "retrying"]
    with pytest.raises(argparse.ArgumentTypeError, match="did you mean 'stopped'"):
        statuses("stoped")


def test_job_id__as_the_admin_shows_it() -> None:
    assert (job_id("12"), job_id("#12")) == (12, 12)
    for text in ("-1", "0", "1.5", "²", str(2**63)):
        with pytest.raises(argparse.ArgumentTypeError):
            job_id(text)


def test_queues_and_names__what_could_not_be_stored_is_refused() -> None:
    assert queues("emails, webhooks") == ["emails", "webhooks"]
    for bad in ("q\udcff", "x" * 101):
        with pytest.raises(argparse.ArgumentTypeError):
            queues(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="lone surrogate"):
        job_name("shop.\udcff")
