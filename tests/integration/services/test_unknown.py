"""Jobs whose name a worker doesn't know: set aside by its claim, put back by a worker that knows
the name, and ended dead only once no live worker has known the name for UNKNOWN_JOB_GRACE."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_jobs import diagnose, lifecycle, metrics, stats
from django_jobs.db import claims, maintenance
from django_jobs.models import Job, JobStatus, KnownName, Worker
from django_jobs.services.unknown import end_unknown
from tests.support import snapshots
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)

NEW = "shop.jobs.added_in_this_release"
GRACE = 600.0


def _worker(worker_id: str, names: list[str], now: datetime, *, silent_for: float = 0.0) -> Worker:
    return Worker.objects.create(
        worker_id=worker_id, hostname="h", pid=1, queues=[], concurrency=2, names=names,
        last_heartbeat=now - timedelta(seconds=silent_for),
    )


def _claim(names: list[str], limit: int = 10) -> tuple[list[dict[str, object]], list[tuple[int, str]]]:
    return claims.claim_and_park("default", worker_id="old:1", limit=limit, now=timezone.now(), names=names)


def _parked(count: int, name: str = NEW, *, ago: float = 0.0) -> list[Job]:
    at = timezone.now() - timedelta(seconds=ago)
    return [Job.objects.create(name=name, priority=10, parked_at=at) for _ in range(count)]


def test_claim__sets_aside_jobs_of_names_it_does_not_know_and_claims_the_rest() -> None:
    unknown = [Job.objects.create(name=NEW, priority=10) for _ in range(3)]
    mine = jobs.record.enqueue("mine")

    claimed, parked = _claim([jobs.record.name])

    assert [r["id"] for r in claimed] == [mine.id]
    assert sorted(parked) == sorted((j.id, NEW) for j in unknown)
    for job in Job.objects.filter(id__in=[j.id for j in unknown]):
        # Untouched but for parked_at: still queued, no attempt spent, no worker, no history.
        assert (job.status, job.attempts, job.worker_id, job.history, job.started_at) == (
            JobStatus.QUEUED, 0, "", [], None)
        assert job.parked_at is not None


def test_claim__never_walks_over_jobs_set_aside_again() -> None:
    _claim([jobs.record.name])  # nothing there yet
    aside = _parked(5)
    mine = jobs.record.enqueue("mine")

    claimed, parked = _claim([jobs.record.name], limit=1)

    assert [r["id"] for r in claimed] == [mine.id] and parked == []
    assert Job.objects.filter(id__in=[j.id for j in aside], status=JobStatus.QUEUED).count() == 5


def test_unpark__a_worker_that_knows_the_name_puts_its_jobs_back_and_claims_them() -> None:
    aside = _parked(2)

    assert claims.unpark("default", [jobs.record.name]) == {}  # not its name: left alone
    assert claims.unpark("default", [NEW, jobs.record.name]) == {NEW: 2}

    claimed, parked = _claim([NEW])
    assert sorted(r["id"] for r in claimed) == sorted(j.id for j in aside) and parked == []


def test_end_unknown__ends_jobs_no_live_worker_has_known_for_the_grace(settings: object) -> None:
    now = timezone.now()
    old = _parked(2, ago=GRACE + 5)
    recent = _parked(1, ago=GRACE - 5)

    assert end_unknown("default", now=now) == {NEW: 2}

    for job in Job.objects.filter(id__in=[j.id for j in old]):
        assert job.status == JobStatus.DEAD and job.finished_at is not None
        assert job.attempts == 0  # it never started
        assert job.last_error.startswith(f"JobNotRegistered: no live worker has registered a job named '{NEW}'")
        assert job.history[-1]["error"]["class"] == "django_jobs.exceptions.JobNotRegistered"
    assert Job.objects.get(id=recent[0].id).status == JobStatus.QUEUED


def test_end_unknown__spares_a_name_a_live_worker_knows() -> None:
    now = timezone.now()
    _parked(2, ago=GRACE * 3)
    _worker("new:1", [NEW, jobs.record.name], now)
    _worker("old:1", [jobs.record.name], now)

    assert end_unknown("default", now=now) == {}
    assert Job.objects.filter(name=NEW, status=JobStatus.QUEUED).count() == 2


def test_end_unknown__counts_the_grace_from_when_a_worker_last_knew_the_name() -> None:
    # Its last worker exited cleanly a minute ago (worker rows go, KnownName stays).
    now = timezone.now()
    _parked(1, ago=GRACE * 3)
    KnownName.objects.saw([NEW], now - timedelta(seconds=60))
    _worker("silent:1", [NEW], now, silent_for=3600)  # a dead worker's row knows nothing

    assert end_unknown("default", now=now) == {}
    assert end_unknown("default", now=now + timedelta(seconds=GRACE)) == {NEW: 1}


def test_end_unknown__a_worker_from_before_names_were_recorded_counts_as_knowing() -> None:
    now = timezone.now()
    _parked(1, ago=GRACE * 3)
    _worker("older:1", [], now)

    assert end_unknown("default", now=now) == {}


def test_end_unknown__stops_a_job_enqueued_after_one_of_them_while_the_batch_ran(second_connection: Any) -> None:
    """An enqueue after a parked job that commits while the batch ending them is on its way to
    that job's row: the batch's snapshot has no edge, so its workflow step can't stop the new job;
    it must run again (with a snapshot that has it) rather than fail."""
    ahead = 200_000  # rows the batch locks before it reaches the upstream job's: ~1 s of work
    snapshots.copies(_parked(1, ago=3600)[0], ahead - 1)
    upstream = _parked(1, ago=3500)[0]  # the highest id: the batch, in id order, locks it last

    def end_batch() -> int:
        return maintenance.end_unknown("default", name=NEW, parked_before=timezone.now(), batch=ahead + 10,
                                       transition=lifecycle.never_known(NEW, timezone.now(), GRACE),
                                       now=timezone.now())

    with snapshots.running(second_connection, "WITH RECURSIVE done AS (UPDATE%", end_batch) as batch:
        downstream = jobs.step.using(after=[upstream.pk]).enqueue("down")
        assert not batch.ended, "the batch ended before the enqueue: raise `ahead`"

    assert (batch.returned, batch.raised) == ([ahead + 1], [])
    assert Job.objects.get(pk=upstream.pk).status == JobStatus.DEAD
    stopped = Job.objects.get(pk=downstream.pk)
    assert (stopped.status, stopped.last_error) == (JobStatus.STOPPED, f"upstream job #{upstream.pk} ended dead")


def test_unknown_names__what_the_overview_and_metrics_show() -> None:
    now = timezone.now()
    _parked(3, ago=30)
    _worker("old:1", [jobs.record.name], now)

    [unknown] = stats.unknown_names("default", now=now)
    assert (unknown.name, unknown.jobs, unknown.known_by) == (NEW, 3, [])
    assert unknown.ends_dead_at(GRACE) == unknown.parked_since + timedelta(seconds=GRACE)
    text = metrics.render("default", now=now)
    assert f'django_jobs_unknown_name_jobs{{name="{NEW}",known="false"}} 3' in text


def test_diagnose__says_no_live_worker_knows_the_name() -> None:
    [job] = _parked(1)
    now = timezone.now()
    _worker("old:1", [jobs.record.name], now)

    [reason] = diagnose.diagnose(job, now=now)

    assert reason.code == "unknown_name"
    assert f"No live worker knows the job name '{NEW}'" in reason.message
    assert "UNKNOWN_JOB_GRACE (0:10:00)" in reason.message
