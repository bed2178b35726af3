"""django_jobs.testing: asserting enqueues and running jobs inline, TestCase and pytest style."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import TestCase
from django.utils import timezone

from django_jobs import job
from django_jobs.exceptions import JobNotRegistered
from django_jobs.models import JobStatus
from django_jobs.signals import job_finished, job_started
from django_jobs.testing import INLINE_WORKER_ID, capture_jobs
from tests.support.factories import JobFactory
from tests.testapp import jobs, tasks
from tests.testapp.models import SideEffect


@job(name="tests.testing.enqueue_follow_up")
def enqueue_follow_up(label: str) -> str:
    jobs.record.enqueue(f"follow-up of {label}")
    return label


@job(name="tests.testing.enqueue_on_commit")
def enqueue_on_commit(label: str) -> None:
    transaction.on_commit(lambda: jobs.record.enqueue(label))


@job(name="tests.testing.forever")
def forever() -> None:
    forever.enqueue()


@job(name="tests.testing.breaks_the_transaction", max_attempts=1)
def breaks_the_transaction() -> None:
    SideEffect.objects.create(job_id=0, label="rolled back")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1/0")


class CaptureJobsInATestCase(TestCase):
    """The unittest style: ``capture_jobs()`` around the code under test."""

    def test_assert_enqueued__matches_name_args_and_kwargs(self) -> None:
        with capture_jobs() as captured:
            jobs.add.enqueue(1, 2)
            jobs.record.enqueue(label="x")
        assert captured.assert_enqueued(jobs.add, args=[1, 2]).name == "tests.add"
        captured.assert_enqueued("tests.add")
        captured.assert_enqueued(jobs.record, kwargs={"label": "x"}, queue="default", count=1)

    def test_assert_enqueued__failure_lists_what_was_enqueued(self) -> None:
        with capture_jobs() as captured:
            jobs.add.enqueue(1, 3)
        with pytest.raises(AssertionError) as failure:
            captured.assert_enqueued(jobs.add, args=[1, 2])
        message = str(failure.value)
        assert "Expected tests.add args=[1, 2] to be enqueued at least once" in message
        assert "tests.add args=[1, 3] kwargs={} queue=default" in message

    def test_assert_enqueued__arguments_are_compared_after_binding_to_the_signature(self) -> None:
        with capture_jobs() as captured:
            jobs.add.enqueue(1, 2)
            jobs.record.enqueue()
        captured.assert_enqueued(jobs.add, kwargs={"a": 1, "b": 2})
        captured.assert_enqueued(jobs.add, args=[1], kwargs={"b": 2})
        captured.assert_enqueued(jobs.record, kwargs={"label": ""})  # the default, as the job sees it
        with pytest.raises(AssertionError, match="Expected tests.add kwargs={'a': 2, 'b': 1} to be enqueued"):
            captured.assert_enqueued(jobs.add, kwargs={"a": 2, "b": 1})

    def test_assert_enqueued__arguments_that_cannot_bind_are_an_error_naming_the_signature(self) -> None:
        with capture_jobs() as captured:
            jobs.add.enqueue(1, 2)
        with pytest.raises(AssertionError, match=r"don't bind to its signature \(a: 'int', b: 'int'\) -> 'int'"):
            captured.assert_enqueued(jobs.add, kwargs={"order_id": 1})

    def test_assert_enqueued__count_must_match(self) -> None:
        with capture_jobs() as captured:
            jobs.record.enqueue("a")
            jobs.record.enqueue("b")
        captured.assert_enqueued(jobs.record, count=2)
        with pytest.raises(AssertionError, match="1 time"):
            captured.assert_enqueued(jobs.record, count=1)
        with pytest.raises(ValueError, match="assert_not_enqueued"):
            captured.assert_enqueued(jobs.record, count=0)

    def test_assert_not_enqueued__of_one_job_or_of_any(self) -> None:
        with capture_jobs() as captured:
            jobs.record.enqueue("a")
        captured.assert_not_enqueued(jobs.add)
        with pytest.raises(AssertionError, match="Expected nothing to be enqueued; enqueued:"):
            captured.assert_not_enqueued()
        with pytest.raises(AssertionError, match="tests.testapp.jobs.record"):
            captured.assert_not_enqueued(jobs.record)

    def test_capture__counts_only_the_block(self) -> None:
        jobs.record.enqueue("before")
        with capture_jobs() as captured:
            jobs.record.enqueue("inside")
        jobs.record.enqueue("after")
        assert [j.args for j in captured.all()] == [["inside"]]

    def test_assert_enqueued__an_unknown_name_says_what_was_meant(self) -> None:
        with capture_jobs() as captured, pytest.raises(JobNotRegistered, match="Did you mean"):
            captured.assert_enqueued("tests.ad")

    def test_run__runs_the_job_in_the_test_transaction(self) -> None:
        with capture_jobs() as captured:
            queued = jobs.add.enqueue(2, 3)
        (ran,) = captured.run()
        assert ran.pk == queued.pk
        assert (ran.status, ran.result, ran.attempts) == (JobStatus.SUCCEEDED, 5, 1)
        assert ran.history[0]["worker"] == INLINE_WORKER_ID
        assert SideEffect.objects.get().label == "add"

    def test_run__runs_an_async_job_whose_orm_calls_use_the_test_transaction(self) -> None:
        with capture_jobs() as captured:
            queued = jobs.async_snooze_once.enqueue(60)
        (ran,) = captured.run()
        assert (ran.status, ran.attempts) == (JobStatus.QUEUED, 1)  # Retry(delay=60 s)
        (ran,) = captured.run(now=timezone.now() + timedelta(minutes=2))
        assert (ran.status, ran.result) == (JobStatus.SUCCEEDED, f"woke in attempt 2 of job {queued.pk}")
        # Written through sync_to_async() on this test's connection, inside its transaction.
        assert list(SideEffect.objects.order_by("id").values_list("label", "attempt")) == [("async", 1), ("async", 2)]

    def test_run__runs_a_workflow_each_job_after_its_upstream_jobs(self) -> None:
        with capture_jobs() as captured:
            parts = [jobs.step.enqueue(f"part{n}", n) for n in range(3)]
            total = jobs.total_upstream.using(after=parts).enqueue("total")
            jobs.step.using(after=[total]).enqueue("after total")
            ran = captured.run()
        assert [j.status for j in ran] == [JobStatus.SUCCEEDED] * 5
        assert list(SideEffect.objects.order_by("id").values_list("label", flat=True)) == [
            "part0", "part1", "part2", "total=3", "after total",
        ]

    def test_run__runs_on_commit_enqueues_as_a_commit_would(self) -> None:
        with capture_jobs() as captured:
            transaction.on_commit(lambda: jobs.record.enqueue("on commit"))
            captured.assert_not_enqueued()
            (ran,) = captured.run()
        assert ran.status == JobStatus.SUCCEEDED
        captured.assert_enqueued(jobs.record, args=["on commit"])
        assert captured.run() == []  # each callback runs once

    def test_run__runs_what_jobs_enqueue_directly_and_on_commit(self) -> None:
        with capture_jobs() as captured:
            enqueue_follow_up.enqueue("a")
            enqueue_on_commit.enqueue("b")
            ran = captured.run()
        assert [j.name for j in ran] == [
            "tests.testing.enqueue_follow_up",
            "tests.testing.enqueue_on_commit",
            "tests.testapp.jobs.record",
            "tests.testapp.jobs.record",
        ]
        assert sorted(SideEffect.objects.values_list("label", flat=True)) == ["b", "follow-up of a"]

    def test_run__retries_wait_for_a_later_now(self) -> None:
        with capture_jobs() as captured:
            failing = jobs.fail_always.enqueue("x")
        (ran,) = captured.run()
        assert (ran.status, ran.attempts) == (JobStatus.RETRYING, 1)
        captured.run(now=timezone.now() + timedelta(hours=1))
        captured.run(now=timezone.now() + timedelta(hours=2))
        failing.refresh_from_db()
        assert (failing.status, failing.attempts) == (JobStatus.DEAD, 3)
        assert [h["error"]["class"] for h in failing.history] == ["builtins.ValueError"] * 3

    def test_run__a_failing_job_cant_break_the_test_transaction(self) -> None:
        with capture_jobs() as captured:
            breaks_the_transaction.enqueue()
        (ran,) = captured.run()
        assert ran.status == JobStatus.DEAD
        assert "ZeroDivision" in ran.last_error or "division by zero" in ran.last_error
        assert not SideEffect.objects.exists()  # the failed attempt's writes were rolled back

    def test_run__raise_errors_fails_the_test_with_the_traceback(self) -> None:
        with capture_jobs() as captured:
            jobs.fail_always.enqueue("loud")
        with pytest.raises(AssertionError, match="(?s)fail_always failed.*ValueError: boom loud"):
            captured.run(raise_errors=True)

    def test_run__stop_and_retry_outcomes_are_the_workers(self) -> None:
        with capture_jobs() as captured:
            stopping = jobs.stop_self.enqueue("done here")
            snoozing = jobs.snooze_once.enqueue(60)
        captured.run()
        stopping.refresh_from_db()
        snoozing.refresh_from_db()
        assert (stopping.status, stopping.last_error) == (JobStatus.STOPPED, "done here")
        assert snoozing.status == JobStatus.QUEUED and snoozing.run_at > timezone.now()

    def test_run__an_unregistered_row_is_set_aside_and_the_rest_still_run(self) -> None:
        unknown = JobFactory(name="tests.testing.nobody")
        with capture_jobs() as captured:
            jobs.add.enqueue(1, 1)
        (ran,) = captured.run()
        assert ran.status == JobStatus.SUCCEEDED
        unknown.refresh_from_db()
        # As a worker whose code doesn't know it: left queued for one that does.
        assert (unknown.status, unknown.attempts) == (JobStatus.QUEUED, 0) and unknown.parked_at is not None

    def test_run__a_job_that_enqueues_itself_stops_at_max_jobs(self) -> None:
        with capture_jobs() as captured:
            forever.enqueue()
        with pytest.raises(AssertionError, match="ran 5 jobs and more are ready"):
            captured.run(max_jobs=5)

    def test_run__sends_the_workers_signals(self) -> None:
        seen: list[tuple[str, Any]] = []

        def started(sender: Any, job_id: int, **kwargs: Any) -> None:
            seen.append(("started", job_id))

        def finished(sender: Any, job_id: int, status: str, **kwargs: Any) -> None:
            seen.append((status, job_id))

        job_started.connect(started)
        job_finished.connect(finished)
        try:
            with capture_jobs() as captured:
                queued = jobs.add.enqueue(1, 2)
            captured.run()
        finally:
            job_started.disconnect(started)
            job_finished.disconnect(finished)
        assert seen == [("started", queued.pk), ("succeeded", queued.pk)]

    def test_tasks__asserted_and_run_like_jobs(self) -> None:
        with capture_jobs() as captured:
            result = tasks.send_email.enqueue("a@example.com", subject="hi")
        captured.assert_enqueued(tasks.send_email, args=["a@example.com"], kwargs={"subject": "hi"})
        captured.assert_not_enqueued(tasks.add)
        captured.run()
        result.refresh()
        assert result.return_value == {"to": "a@example.com", "subject": "hi"}


# -- the pytest fixture ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_call_command_runjobs__runs_committed_jobs_in_a_transactional_test() -> None:
    """What docs/how-to/testing.md shows for a test that needs a real worker."""
    from django.core.management import call_command

    queued = jobs.add.enqueue(20, 22)
    call_command("runjobs", "--burst", "--concurrency=1", "--no-scheduler")
    queued.refresh_from_db()
    assert (queued.status, queued.result) == (JobStatus.SUCCEEDED, 42)
