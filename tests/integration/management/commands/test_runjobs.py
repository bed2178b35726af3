"""``manage.py runjobs`` in this process: ``--queue`` and ``--max-jobs`` against the test database."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from django_jobs.models import Job, JobStatus
from tests.testapp import jobs
from tests.testapp.models import SideEffect


@pytest.mark.django_db(transaction=True)
def test_runjobs__queue_option_runs_only_those_queues() -> None:
    wanted = [jobs.record.using(queue=q).enqueue(q) for q in ("emails", "reports")]
    other = jobs.record.using(queue="default").enqueue("default")

    call_command("runjobs", "--queue", "emails", "--queue", "reports", "--burst", "--concurrency", "1",
                 "--no-scheduler")

    assert sorted(SideEffect.objects.values_list("label", flat=True)) == ["emails", "reports"]
    assert {Job.objects.get(pk=j.pk).status for j in wanted} == {JobStatus.SUCCEEDED}
    assert Job.objects.get(pk=other.pk).status == JobStatus.QUEUED


@pytest.mark.django_db(transaction=True)
def test_runjobs__queue_option_takes_a_comma_separated_list() -> None:
    jobs.record.using(queue="a").enqueue("a")
    jobs.record.using(queue="b").enqueue("b")
    jobs.record.using(queue="c").enqueue("c")

    call_command("runjobs", "--queue", "a, b", "--burst", "--concurrency", "1", "--no-scheduler")

    assert sorted(SideEffect.objects.values_list("label", flat=True)) == ["a", "b"]


@pytest.mark.django_db(transaction=True)
def test_runjobs__max_jobs_exits_after_claiming_that_many() -> None:
    jobs.record.enqueue_many([[f"j{i}"] for i in range(5)])

    # Not --burst: only --max-jobs can make this worker return.
    call_command("runjobs", "--max-jobs", "2", "--concurrency", "1", "--no-scheduler")

    assert SideEffect.objects.count() == 2
    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == 2
    assert Job.objects.filter(status=JobStatus.QUEUED).count() == 3


@pytest.mark.django_db(transaction=True)
def test_runjobs__max_jobs_is_not_exceeded_with_more_children_than_jobs_left() -> None:
    jobs.record.enqueue_many([[f"j{i}"] for i in range(5)])

    call_command("runjobs", "--max-jobs", "3", "--concurrency", "2", "--no-scheduler")

    assert SideEffect.objects.count() == 3
