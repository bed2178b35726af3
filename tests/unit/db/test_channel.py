"""The NOTIFY channel's payload: its format and its parsing."""

from __future__ import annotations

import pytest

from django_jobs.db import channel


@pytest.mark.parametrize("queue", ["default", "my queue", " x", "!not-a-control", "a 5"])
@pytest.mark.parametrize("due", [0.0, 1893456000.25])
def test_wakeup_payload__reads_back_as_its_queue_and_due_time(queue: str, due: float) -> None:
    assert channel.parse_wakeup(channel.wakeup_payload(queue, due)) == (queue, due or None)


def test_parse_wakeup__a_bare_queue_name_from_an_older_worker_is_read() -> None:
    assert channel.parse_wakeup("emails") == ("emails", None)
    assert channel.parse_wakeup("emails 1893456000.5") == ("emails", 1893456000.5)


@pytest.mark.parametrize("payload", ["my queue", "q nan", "q inf", "q -1"])
def test_parse_wakeup__a_payload_without_a_due_time_is_a_value_error(payload: str) -> None:
    with pytest.raises(ValueError):
        channel.parse_wakeup(payload)
