"""A NOTIFY sent at commit wakes an idle ``runjobs`` process long before its poll interval."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.procs import pickup_seconds, wait_listening
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


POLL_SETTINGS = "tests.settings_slow_poll"


@pytest.mark.subprocess
def test_notify__wakes_an_idle_worker_long_before_its_poll_interval(
    second_connection: Any, worker_process: Any
) -> None:
    from tests.settings_slow_poll import POLL_INTERVAL

    worker = worker_process(
        "--concurrency", "1", "--no-scheduler", env={"DJANGO_SETTINGS_MODULE": POLL_SETTINGS}
    )
    wait_listening(second_connection, worker)

    def run_one(label: str) -> float:
        return pickup_seconds(jobs.record, label, worker, timeout=POLL_INTERVAL / 2)

    # The first job also flushes out the wake-up the worker gives itself when it starts listening.
    run_one("warm-up")
    # An idle worker also wakes every few seconds for its maintenance services, so a single quick
    # pick-up could be luck; several in a row can't be.
    latencies = [run_one(f"job {i}") for i in range(5)]

    assert max(latencies) < 2.0, latencies
    assert worker.proc.poll() is None, worker.describe()
    assert worker.stop() == 0, worker.describe()
