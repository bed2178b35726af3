"""signals.py: the public signals, and job_finished's documented arguments for a job run inline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.dispatch import Signal

from django_jobs import signals
from django_jobs.testing import INLINE_WORKER_ID, EnqueuedJobs
from tests.testapp import jobs


@contextmanager
def connected(signal: Signal, *receivers: Callable[..., Any]) -> Iterator[None]:
    for receiver in receivers:
        signal.connect(receiver)
    try:
        yield
    finally:
        for receiver in receivers:
            signal.disconnect(receiver)


def test_signals__the_public_ones_exist() -> None:
    for name in ("job_enqueued", "job_started", "job_finished"):
        assert isinstance(getattr(signals, name), Signal)


@pytest.mark.django_db
def test_job_finished__carries_the_documented_arguments(enqueued_jobs: EnqueuedJobs) -> None:
    sent: list[dict[str, Any]] = []

    def receive(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    queued = jobs.add.enqueue(2, 3)
    with connected(signals.job_finished, receive):
        enqueued_jobs.run()

    (kwargs,) = sent
    assert set(kwargs) >= {"job_id", "name", "attempt", "worker_id", "status", "outcome", "duration", "error"}
    assert (kwargs["job_id"], kwargs["name"], kwargs["attempt"]) == (queued.pk, "tests.add", 1)
    assert (kwargs["worker_id"], kwargs["status"], kwargs["outcome"]) == (INLINE_WORKER_ID, "succeeded", "succeeded")
    assert kwargs["error"] is None and kwargs["duration"] >= 0


@pytest.mark.django_db
def test_job_finished__a_receiver_that_raises_is_logged_and_the_others_still_hear(
    enqueued_jobs: EnqueuedJobs, caplog: pytest.LogCaptureFixture
) -> None:
    heard: list[int] = []

    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    def receive(sender: Any, job_id: int, **kwargs: Any) -> None:
        heard.append(job_id)

    queued = [jobs.add.enqueue(1, i) for i in range(2)]
    with connected(signals.job_finished, broken, receive):
        enqueued_jobs.run()

    assert heard == [job.pk for job in queued]
    for job in queued:
        job.refresh_from_db()
        assert job.status == "succeeded"
    failures = [r.getMessage() for r in caplog.records if "event=receiver_failed" in r.getMessage()]
    assert len(failures) == 2 and "receiver bug" in failures[0] and "broken" in failures[0]


@pytest.mark.django_db
def test_job_finished__reaches_an_async_receiver(enqueued_jobs: EnqueuedJobs) -> None:
    heard: list[int] = []

    async def receive(sender: Any, job_id: int, **kwargs: Any) -> None:
        heard.append(job_id)

    queued = jobs.add.enqueue(2, 3)
    with connected(signals.job_finished, receive):
        enqueued_jobs.run()

    assert heard == [queued.pk]
