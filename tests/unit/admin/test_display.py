"""admin/display.py: durations and first lines as the admin pages show them (no database).

format_age is checked in tests/integration/admin/test_overview.py, next to the page using it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from django_jobs.admin.display import first_line, format_duration


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
