"""The wake-up channel: the NOTIFY payload's format, and the worker's Listener reading it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from django_jobs.db import channel
from django_jobs.worker.listener import Listener


@pytest.fixture
def listener() -> Iterator[tuple[Listener, int]]:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    try:
        yield Listener("default", write_end, {"my queue"}), read_end
    finally:
        os.close(read_end)
        os.close(write_end)


def woken(read_end: int) -> bool:
    try:
        return bool(os.read(read_end, 100))
    except BlockingIOError:
        return False


def test_listener__wakes_for_a_queue_with_spaces_and_notes_its_due_time(listener: tuple[Listener, int]) -> None:
    handler, read_end = listener
    due = time.time() + 3600

    handler.on_payload(channel.wakeup_payload("my queue", due))

    assert woken(read_end)
    assert handler.due == [due]
    handler.on_payload(channel.wakeup_payload("my"))
    handler.on_payload(channel.wakeup_payload("queue"))
    assert not woken(read_end)


def test_listener__an_unreadable_payload_is_logged_and_wakes_the_worker(
    listener: tuple[Listener, int], caplog: pytest.LogCaptureFixture
) -> None:
    handler, read_end = listener

    handler.on_payload("my queue soon")

    assert woken(read_end)
    assert "event=notify_unreadable" in caplog.text and "my queue soon" in caplog.text
    assert not handler.control.is_set()


def test_listener__control_messages_are_told_from_queues_starting_with_a_bang(
    listener: tuple[Listener, int],
) -> None:
    handler, read_end = listener

    handler.on_payload(channel.wakeup_payload("!stop"))
    assert not handler.control.is_set()

    handler.on_payload("!stop")
    assert handler.control.is_set() and woken(read_end)
