"""log.py: one greppable ``key=value`` line per event (no database)."""

from __future__ import annotations

from django_jobs.log import format_event


def test_format_event__key_value_pairs_leaving_out_none() -> None:
    line = format_event("failed", job=123, name="tests.x", attempt=2, error=None)
    assert line == "django_jobs event=failed job=123 name=tests.x attempt=2"


def test_format_event__quotes_values_with_spaces_quotes_or_equals_and_keeps_one_line() -> None:
    line = format_event("failed", error='bad "thing"\nhere', key="a=b", empty="")
    assert line == "django_jobs event=failed error=\"bad 'thing' here\" key=\"a=b\" empty=\"\""


def test_format_event__what_postgresql_cannot_store_is_escaped() -> None:
    assert format_event("x", error="a\x00b") == "django_jobs event=x error=a\\x00b"
