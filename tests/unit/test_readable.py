"""readable.py: durations and first lines as the admin pages and ``manage.py jobs`` show them (no
database).

format_age is checked in tests/integration/admin/test_overview.py, next to the page using it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from django_jobs.readable import first_line, format_duration, run_time


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "—"), (-1, "0 ms"), (0.85, "850 ms"), (9.54, "9.5 s"), (12.54, "12 s"),
     (200, "3 min 20 s"),
     (7500, "2 h 5 min")],
)
def test_format_duration__milliseconds_then_seconds_then_like_an_age(
    seconds: float | None, shown: str,
) -> None:
    assert format_duration(None if seconds is None else timedelta(seconds=seconds)) == shown


def test_first_line__the_first_line_cut_with_an_ellipsis() -> None:
    assert first_line("  ValueError: bad\nTraceback ...") == "ValueError: bad"
    assert first_line("") == ""
    assert first_line("x" * 150, limit=10) == "x" * 9 + "…"


def test_run_time__finished_running_or_never_started() -> None:
    start = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    now = start + timedelta(minutes=3)

    assert run_time(start, start + timedelta(seconds=1.25), running=False, now=now) == "1.2 s"
    assert run_time(start, None, running=True, now=now) == "3 min so far"
    assert run_time(None, None, running=False, now=now) == "—"
    # Times from two hosts' clocks that disagree: no negative duration.
    assert run_time(start, start - timedelta(seconds=5), running=False, now=now) == "—"
