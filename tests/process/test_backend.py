"""backend.py with a real worker: a fresh ``runjobs`` process finds tasks in tasks modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.testapp import tasks


@pytest.mark.django_db(transaction=True)
@pytest.mark.subprocess
def test_runjobs__a_fresh_worker_finds_tasks_in_tasks_modules(
    worker_process: Callable[..., Any],
) -> None:
    result = tasks.send_email.enqueue("sub@example.com", "hi")
    worker = worker_process("--burst", "--concurrency", "1", "--no-scheduler")
    assert worker.wait() == 0, worker.describe()
    value = tasks.send_email.get_result(result.id).return_value
    assert value == {"to": "sub@example.com", "subject": "hi"}
