"""The wake-up channel: the NOTIFY payload's format, and the worker's Listener reading it."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Iterator

import pytest
from django.db import transaction
from django.utils import timezone

from django_jobs.db import channel
from django_jobs.models import Job, JobStatus
from django_jobs.worker.listener import Listener
from tests.conftest import wait_until
from tests.testapp import jobs

POLL_SETTINGS = "tests.settings_slow_poll"


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
    wait_until(
        lambda: second_connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            [f"LISTEN {channel.CHANNEL}"],
        ).fetchone()[0] == 1,
        timeout=30,
        message=lambda: f"the worker to LISTEN; {worker.describe()}",
    )
    spaced = jobs.record.using(queue="my queue")

    def run_one(label: str) -> float:
        with transaction.atomic():
            job = spaced.enqueue(label)
        committed = timezone.now()
        wait_until(
            lambda: Job.objects.filter(pk=job.pk, status=JobStatus.SUCCEEDED).exists(),
            timeout=POLL_INTERVAL / 2,
            message=lambda: f"job {label} to run; {worker.describe()}",
        )
        started = Job.objects.get(pk=job.pk).started_at
        return (started - committed).total_seconds()

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
    wait_until(
        lambda: second_connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            [f"LISTEN {channel.CHANNEL}"],
        ).fetchone()[0] == 1,
        timeout=30,
        message=lambda: f"the worker to LISTEN; {worker.describe()}",
    )

    job = jobs.record.using(queue="my queue").enqueue("spaced")
    later = jobs.record.enqueue("after it")
    wait_until(
        lambda: Job.objects.filter(pk__in=[job.pk, later.pk], status=JobStatus.SUCCEEDED).count() == 2,
        timeout=30,
        message=lambda: f"both jobs to run; {worker.describe()}",
    )

    assert "listen_lost" not in worker.output(), worker.describe()
    assert worker.stop() == 0, worker.describe()
