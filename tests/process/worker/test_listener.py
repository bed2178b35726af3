"""The Listener in a real runjobs process: queue names with spaces neither break nor deafen it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from django_jobs.models import Job, JobStatus
from tests.support.procs import pickup_seconds, wait_listening, wait_until
from tests.testapp import jobs

POLL_SETTINGS = "tests.settings_slow_poll"


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_listener__a_worker_started_with_a_queue_name_containing_a_space_is_woken_by_an_enqueue(
    second_connection: Any, worker_process: Any
) -> None:
    from tests.settings_slow_poll import POLL_INTERVAL

    # Nothing else wakes this worker for a while: no poll for 120 s, the heartbeat's round every
    # 60 s, rescue every 15 s. (Before the fix it only saw its jobs at one of those.)
    quiet = json.dumps({"HEARTBEAT_INTERVAL": 60.0, "RESCUE_AFTER": 600.0})
    worker = worker_process(
        "--queue", "my queue", "--concurrency", "1", "--no-scheduler",
        env={"DJANGO_SETTINGS_MODULE": POLL_SETTINGS, "DJANGO_JOBS_TEST_SETTINGS": quiet},
    )
    wait_listening(second_connection, worker)
    spaced = jobs.record.using(queue="my queue")

    def run_one(label: str) -> float:
        return pickup_seconds(spaced, label, worker, timeout=POLL_INTERVAL / 2)

    run_one("warm-up")  # also takes the wake-up the worker gives itself when it starts listening
    latencies = [run_one(f"job {i}") for i in range(4)]

    assert max(latencies) < 3.0, (latencies, worker.describe())
    assert "listen_lost" not in worker.output() and "notify_unreadable" not in worker.output()
    assert worker.stop() == 0, worker.describe()


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_listener__a_queue_name_with_a_space_does_not_break_a_worker_serving_every_queue(
    second_connection: Any, worker_process: Any
) -> None:
    worker = worker_process("--concurrency", "1", "--no-scheduler")
    wait_listening(second_connection, worker)

    job = jobs.record.using(queue="my queue").enqueue("spaced")
    later = jobs.record.enqueue("after it")
    wait_until(
        lambda: Job.objects.filter(pk__in=[job.pk, later.pk], status=JobStatus.SUCCEEDED).count() == 2,
        timeout=30,
        message=lambda: f"both jobs to run; {worker.describe()}",
    )

    assert "listen_lost" not in worker.output(), worker.describe()
    assert worker.stop() == 0, worker.describe()
