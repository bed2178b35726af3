"""models.py: the operator transitions in bulk (JobQuerySet.retry/stop/dead_letter), Job.wait()."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import models
from django_jobs.exceptions import JobNotCommitted
from django_jobs.models import Job, JobStatus
from tests.support.factories import JobFactory
from tests.testapp import jobs

pytestmark = pytest.mark.django_db

FAIL = "tests.testapp.jobs.fail_always"  # registered with max_attempts=3


def statuses(*jobs: Job) -> list[str]:
    return [Job.objects.get(pk=j.pk).status for j in jobs]


def test_retry__queues_the_retryable_and_counts_the_rest_by_status() -> None:
    now = timezone.now()
    dead = JobFactory(name=FAIL, status="dead", attempts=3, max_attempts=3, finished_at=now)
    stopped = JobFactory(status="stopped", attempts=1, finished_at=now)
    later = now + timedelta(hours=1)
    retrying = JobFactory(status="retrying", attempts=1, max_attempts=3, run_at=later)
    running = JobFactory(status="running", attempts=1)
    queued = JobFactory(status="queued")
    succeeded = JobFactory(finished=True)

    result = Job.objects.all().retry(now=now)

    assert result.done == Counter(dead=1, stopped=1, retrying=1)
    assert result.skipped == Counter(running=1, queued=1, succeeded=1)
    assert statuses(dead, stopped, retrying, running, queued, succeeded) == [
        "queued",
        "queued",
        "queued",
        "running",
        "queued",
        "succeeded",
    ]
    dead.refresh_from_db()
    retrying.refresh_from_db()
    assert (dead.max_attempts, dead.run_at, dead.finished_at) == (6, now, None)
    assert (retrying.max_attempts, retrying.run_at) == (3, now)


def test_retry__skips_a_job_whose_unique_key_another_active_job_holds() -> None:
    holder = JobFactory(status="queued", unique_key="order-7")
    dead = JobFactory(status="dead", unique_key="order-7")
    twin_a = JobFactory(status="dead", unique_key="order-8")
    twin_b = JobFactory(status="stopped", unique_key="order-8")
    retrying = JobFactory(status="retrying", unique_key="order-9")
    dead_of_retrying = JobFactory(status="dead", unique_key="order-9")

    result = Job.objects.exclude(pk=holder.pk).retry()

    assert result.done == Counter(dead=1, retrying=1)
    assert result.skipped == Counter(key_taken=3)
    assert statuses(dead, twin_a, twin_b, retrying, dead_of_retrying) == [
        "dead",
        "queued",
        "stopped",
        "queued",
        "dead",
    ]


def test_transitions__walk_the_jobs_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "TRANSITION_BATCH", 2)
    jobs = [JobFactory(status="dead") for _ in range(5)] + [JobFactory(status="running")]

    result = Job.objects.filter(pk__in=[j.pk for j in jobs]).retry()

    assert (result.done, result.skipped) == (Counter(dead=5), Counter(running=1))
    assert statuses(*jobs) == ["queued"] * 5 + ["running"]


def test_stop__ends_waiting_jobs_and_asks_running_ones_once() -> None:
    now = timezone.now()
    queued, retrying = JobFactory(status="queued"), JobFactory(status="retrying")
    running = JobFactory(status="running", attempts=1)
    asked = now - timedelta(seconds=5)
    stopping = JobFactory(status="running", attempts=1, stop_requested_at=asked)
    dead = JobFactory(status="dead")

    result = Job.objects.all().stop("maintenance", now=now)

    assert result.done == Counter(queued=1, retrying=1, running=1)
    assert result.skipped == Counter(stopping=1, dead=1)
    assert statuses(queued, retrying, running, stopping, dead) == [
        "stopped",
        "stopped",
        "running",
        "running",
        "dead",
    ]
    assert Job.objects.get(pk=queued.pk).last_error == "maintenance"
    assert Job.objects.get(pk=running.pk).stop_requested_at == now
    assert Job.objects.get(pk=stopping.pk).stop_requested_at == asked


def test_dead_letter__notes_why_in_the_history_of_each_job() -> None:
    now = timezone.now()
    waiting = JobFactory(status="retrying", history=[{"attempt": 1, "outcome": "failed"}])
    JobFactory(status="running")

    result = Job.objects.all().dead_letter("partner gone", now=now)

    assert (result.done, result.skipped) == (Counter(retrying=1), Counter(running=1))
    waiting.refresh_from_db()
    assert waiting.status == "dead"
    assert waiting.last_error == "dead-lettered by an operator: partner gone"
    assert waiting.history == [
        {"attempt": 1, "outcome": "failed"},
        {"event": "dead-lettered", "at": now.isoformat(), "note": "partner gone"},
    ]


def test_row_verbs__are_the_queryset_verbs_on_one_row() -> None:
    job = JobFactory(status="running")

    assert job.retry() is False and job.dead_letter() is False
    assert job.stop() is True and job.stop_requested_at is not None
    assert job.stop() is True  # already asked: still True, nothing new
    Job.objects.filter(pk=job.pk).update(status=JobStatus.STOPPED)
    assert job.dead_letter("gave up") is True and job.status == "dead"
    assert job.retry() is True and job.status == "queued"


def test_schedule__loads_from_the_database_without_deprecation_warnings() -> None:
    # Schedule overrides from_db() to remember what was loaded; Django 6.1 passes it fetch_mode
    # and warns about overrides that can't take it.
    import warnings

    models.Schedule.objects.create(name="nightly", job_name="tests.testapp.jobs.record", cron="5 0 * * *")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schedule = models.Schedule.objects.get(name="nightly")

    assert schedule._loaded == ("5 0 * * *", schedule.timezone, True)


@pytest.mark.parametrize(
    ("queue", "message"),
    [
        ("a,b", "The queue 'a,b' contains a comma, which runjobs --queue reads as a separator."),
        (" padded", "The queue ' padded' starts or ends with whitespace, which runjobs --queue strips."),
    ],
)
def test_schedule_problems__an_invalid_queue_name_is_reported_on_the_queue_field(queue: str, message: str) -> None:
    # Firing would refuse it (using() checks queue names); the form says so first.
    schedule = models.Schedule(
        name="bad queue", cron="0 * * * *", timezone="UTC", job_name="tests.testapp.jobs.record", queue=queue
    )

    assert schedule.problems() == {"queue": message}


def test_schedule_problems__a_queue_name_with_a_space_is_fine() -> None:
    schedule = models.Schedule(
        name="spaced", cron="0 * * * *", timezone="UTC", job_name="tests.testapp.jobs.record", queue="my queue"
    )

    assert schedule.problems() == {}


# -- Job.wait() without a worker (tests/process/test_wait.py runs one) --------------------------


@pytest.mark.django_db(transaction=True)
def test_wait__returns_a_finished_job_at_once_refreshed() -> None:
    job = JobFactory(status="queued")
    Job.objects.filter(pk=job.pk).update(status=JobStatus.STOPPED, last_error="enough")

    assert job.wait(timeout=0) is job
    assert (job.status, job.last_error) == (JobStatus.STOPPED, "enough")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("timeout", [0, 0.05, timedelta(milliseconds=50)])
def test_wait__raises_timeout_error_saying_where_the_job_is(timeout: object) -> None:
    job = JobFactory(status="queued", name="tests.testapp.jobs.noop")

    with pytest.raises(TimeoutError, match=rf"Job #{job.pk} \(tests\.testapp\.jobs\.noop\) hasn't finished within .*s: it is queued\."):
        job.wait(timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.django_db(transaction=True)
def test_wait__a_deleted_job_raises_does_not_exist() -> None:
    job = JobFactory(status="queued")
    Job.objects.filter(pk=job.pk).delete()

    with pytest.raises(Job.DoesNotExist, match="no longer exists"):
        job.wait(timeout=1)


def test_wait__a_job_whose_enqueue_hasnt_committed_says_so() -> None:
    # This test runs inside a transaction: no other session, no worker, can see the job.
    job = jobs.record.enqueue("uncommitted")

    with pytest.raises(JobNotCommitted, match=r"isn't committed yet.*transaction\.on_commit"):
        job.wait(timeout=1)


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5", True])
def test_wait__refuses_a_timeout_that_isnt_seconds(timeout: object) -> None:
    with pytest.raises(ValueError, match=r"wait\(timeout=…\) takes seconds"):
        JobFactory.build().wait(timeout=timeout)  # type: ignore[arg-type]


def test_wait__refuses_a_job_never_saved() -> None:
    with pytest.raises(ValueError, match="never saved"):
        JobFactory.build().wait(timeout=1)
