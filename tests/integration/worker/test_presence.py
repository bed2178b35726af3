"""worker/presence.py: the worker's row, its heartbeat, and the stop requests it brings back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from django_jobs.models import Job, Worker
from django_jobs.services import ServiceContext
from django_jobs.worker.presence import Presence
from django_jobs.worker.reconnect import DatabaseLink
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def wake() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


def presence(wake_fd: int, running: tuple[int, ...] = ()) -> Presence:
    return Presence(
        context=ServiceContext("default", "w-test", timezone.now), queues=["default"], concurrency=2,
        link=DatabaseLink("default", "w-test"), held=lambda: (running, timezone.now()), wake_fd=wake_fd,
    )


def test_register__writes_the_worker_row_and_unregister_deletes_it(wake: tuple[int, int]) -> None:
    me = presence(wake[1])

    me.register()
    row = Worker.objects.get(worker_id="w-test")
    assert (row.pid, row.concurrency, row.queues) == (os.getpid(), 2, ["default"])

    me.unregister()
    assert not Worker.objects.filter(worker_id="w-test").exists()


@pytest.mark.django_db(transaction=True)
def test_register__tells_the_other_workers_it_joined(wake: tuple[int, int], second_connection: Any) -> None:
    from django_jobs.db import channel
    from django_jobs.models import CONTROL_JOINED

    second_connection.execute(f"LISTEN {channel.CHANNEL}")
    presence(wake[1]).register()

    # Their shares of limited slots shrink (flow.fair_share): the control message makes them look.
    payload = next(second_connection.notifies(timeout=10)).payload
    assert payload == CONTROL_JOINED


def test_beat__lists_the_running_jobs_and_brings_back_their_stop_requests(wake: tuple[int, int]) -> None:
    asked, other = JobFactory(status="running", attempts=1), JobFactory(status="running", attempts=1)
    me = presence(wake[1], running=(asked.pk, other.pk))
    me.register()
    assert me.stop_requests() is None
    Job.objects.filter(pk=asked.pk).update(stop_requested_at=timezone.now())

    me.beat()

    assert Worker.objects.get(worker_id="w-test").running == [asked.pk, other.pk]
    assert me.stop_requests() == {asked.pk}
    assert os.read(wake[0], 10) == b"x"  # the main loop was woken
    # ...and told `jobs health` it is alive; unregistering says it is gone.
    assert me.health.path.exists()
    me.unregister()
    assert not me.health.path.exists()
