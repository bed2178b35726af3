"""worker/ledger.py: claimed jobs and pending outcomes, written with the next claim (the inline
ledger django_jobs.testing uses: no children)."""

from __future__ import annotations

import pytest

from django_jobs.models import Job, JobStatus
from django_jobs.worker.ledger import Ledger
from tests.testapp import jobs

pytestmark = pytest.mark.django_db


def ledger() -> Ledger:
    return Ledger.inline(using="default", worker_id="w-test")


def test_sync__claims_into_the_buffer_and_holds_the_job() -> None:
    queued = jobs.record.enqueue("x")
    book = ledger()

    assert book.sync(5) == 1

    assert [row["id"] for row in book.buffer] == [queued.pk] == book.held_ids()
    assert Job.objects.get(pk=queued.pk).status == JobStatus.RUNNING


def test_flush__writes_a_queued_outcome_and_lets_go_of_the_job() -> None:
    queued = jobs.record.enqueue("x")
    book = ledger()
    book.sync(1)

    book.queue(book.buffer.popleft(), {"outcome": "succeeded", "result": "x"}, 0.01)
    book.flush()

    assert book.pending == [] and book.held_ids() == []
    job = Job.objects.get(pk=queued.pk)
    assert (job.status, job.result, len(job.history)) == (JobStatus.SUCCEEDED, "x", 1)


def test_stop_buffered__ends_a_claimed_job_stopped_without_running_it() -> None:
    queued = jobs.record.enqueue("x")
    book = ledger()
    book.sync(1)

    book.stop_buffered({queued.pk})
    book.flush()

    assert not book.buffer
    assert Job.objects.get(pk=queued.pk).status == JobStatus.STOPPED
