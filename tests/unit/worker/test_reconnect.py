"""worker/reconnect.py: the backoff between tries while the database is away (no database).

tests/process/worker/test_reconnect.py restarts a real server under a running worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import override_settings

from django_jobs.worker.reconnect import DatabaseLink, first_line


@pytest.fixture
def link() -> Iterator[DatabaseLink]:
    with override_settings(DJANGO_JOBS={**settings.DJANGO_JOBS, "RECONNECT_BACKOFF": 0.5}):
        yield DatabaseLink("default", "w-test")


def test_lost__waits_the_backoff_then_doubles_it_up_to_thirty_seconds(link: DatabaseLink) -> None:
    before = time.monotonic()
    link.lost(OperationalError("server closed the connection"))
    assert link.is_down() and link.unsure
    assert before + 0.5 <= link.down_until <= time.monotonic() + 0.5
    waits = [link.backoff]
    for _ in range(8):
        link.lost(OperationalError("still down"))
        waits.append(link.backoff)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_ok__starts_the_backoff_over(link: DatabaseLink) -> None:
    link.lost(OperationalError("down"))
    link.lost(OperationalError("down"))
    link.ok()
    assert link.backoff == 0.5
    assert not link.is_down()


def test_first_line__one_short_line_or_the_class_name() -> None:
    assert first_line(OperationalError("connection refused\n\tIs the server running?")) == "connection refused"
    assert first_line(OperationalError()) == "OperationalError"
    assert len(first_line(ValueError("x" * 500))) == 200
