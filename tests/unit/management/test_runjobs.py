"""``manage.py runjobs``: option validation, ``--queue`` and ``--max-jobs``, run in this process."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from django_jobs.models import Job, JobStatus
from tests.testapp import jobs
from tests.testapp.models import SideEffect


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "--concurrency must be at least 1, not 0."),
        (["--concurrency", "-2"], "--concurrency must be at least 1, not -2."),
        (["--concurrency", "x"], "--concurrency takes a whole number, not 'x'."),
        (["--concurrency", "1.5"], "--concurrency takes a whole number, not '1.5'."),
        (["--max-jobs", "-1"], "--max-jobs must be at least 1, not -1."),
        (["--max-jobs", "0"], "--max-jobs must be at least 1, not 0."),
        (["--max-jobs", "many"], "--max-jobs takes a whole number, not 'many'."),
        (["--grace", "-1"], "--grace takes a finite number of seconds >= 0, not '-1'."),
        (["--grace", "nan"], "--grace takes a finite number of seconds >= 0, not 'nan'."),
        (["--grace", "soon"], "--grace takes seconds, not 'soon'."),
        (["--queue", ""], "--queue needs a queue name."),
        (["--queue", " , "], "--queue needs a queue name."),
        (["--queue", "q" * 101], f"--queue: queue is 101 characters long, over the limit of 100: {'q' * 40!r}… would be cut short."),
        (["--queue", "nul\x00"], "--queue: queue 'nul\\x00' contains a NUL character (\\x00), which PostgreSQL can't store."),
        (["--worker-id", "  "], "--worker-id can't be empty."),
    ],
)
def test_runjobs__bad_option_is_a_command_error_saying_what_is_wrong(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as info:
        call_command("runjobs", *args)

    assert str(info.value) == message


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
