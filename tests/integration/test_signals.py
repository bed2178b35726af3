"""signals.py: the public signals, and job_finished's documented arguments for a job run inline."""

from __future__ import annotations

from typing import Any

import pytest
from django.dispatch import Signal

from django_jobs import signals
from django_jobs.testing import INLINE_WORKER_ID, EnqueuedJobs
from tests.testapp import jobs


def test_signals__the_public_ones_exist() -> None:
    for name in ("job_enqueued", "job_started", "job_finished"):
        assert isinstance(getattr(signals, name), Signal)


@pytest.mark.django_db
def test_job_finished__carries_the_documented_arguments(enqueued_jobs: EnqueuedJobs) -> None:
    sent: list[dict[str, Any]] = []

    def receive(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    queued = jobs.add.enqueue(2, 3)
    signals.job_finished.connect(receive)
    try:
        enqueued_jobs.run()
    finally:
        signals.job_finished.disconnect(receive)

    (kwargs,) = sent
    assert set(kwargs) >= {"job_id", "name", "attempt", "worker_id", "status", "outcome", "duration", "error"}
    assert (kwargs["job_id"], kwargs["name"], kwargs["attempt"]) == (queued.pk, "tests.add", 1)
    assert (kwargs["worker_id"], kwargs["status"], kwargs["outcome"]) == (INLINE_WORKER_ID, "succeeded", "succeeded")
    assert kwargs["error"] is None and kwargs["duration"] >= 0
