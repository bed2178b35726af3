"""``jobs retry``, ``jobs stop`` and ``jobs deadletter``: the queryset verbs by ids or filters, with
``--dry-run``, a question before changing more than one job, and ``--yes``."""

from __future__ import annotations

import io

import pytest

from django_jobs.models import Job, JobStatus
from tests.support.cli import Terminal, jobs
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db


def statuses(*made: Job) -> list[str]:
    return [Job.objects.get(pk=j.pk).status for j in made]


def test_retry__one_job_by_id_without_a_question() -> None:
    dead = JobFactory(status=JobStatus.DEAD, attempts=3, max_attempts=3)

    ran = jobs("retry", dead.pk)

    assert ran.code == 0, ran.err
    assert ran.out.strip().endswith("1 job retried.")
    row = Job.objects.get(pk=dead.pk)
    assert (row.status, row.max_attempts) == (JobStatus.QUEUED, 6)  # a fresh budget, as the admin's


def test_retry__dry_run_says_what_would_change_and_changes_nothing() -> None:
    dead = [JobFactory(status=JobStatus.DEAD) for _ in range(2)]
    running = JobFactory(status=JobStatus.RUNNING)

    ran = jobs("retry", *(j.pk for j in [*dead, running]), "--dry-run")

    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert any(line.split()[1:4] == ["dead", "2", "retried"] for line in lines[1:3]), ran.out
    assert "skipped: it is running" in ran.out
    assert "2 of 3 jobs will be retried; 1 skipped." in ran.out
    assert lines[-1] == "Dry run: nothing changed."
    assert statuses(*dead, running) == ["dead", "dead", "running"]


def test_retry__more_than_one_job_without_a_terminal_is_refused() -> None:
    dead = [JobFactory(status=JobStatus.DEAD) for _ in range(2)]

    ran = jobs("retry", "--status", "dead", stdin=io.StringIO("yes\n"))

    assert ran.code == 1
    assert "Retry these 2 jobs? There is no terminal to ask on: add --yes" in ran.err
    assert statuses(*dead) == ["dead", "dead"]


@pytest.mark.parametrize(("answer", "done"), [("y\n", True), ("yes\n", True), ("n\n", False), ("", False)])
def test_retry__asks_on_a_terminal_and_acts_only_on_yes(answer: str, done: bool) -> None:
    dead = [JobFactory(status=JobStatus.DEAD) for _ in range(2)]

    ran = jobs("retry", "--status", "dead", stdin=Terminal(answer))

    assert "Retry these 2 jobs? [y/N]" in ran.out
    assert ran.code == (0 if done else 1)
    assert statuses(*dead) == (["queued"] * 2 if done else ["dead"] * 2)
    assert ("2 jobs retried." in ran.out) is done


def test_retry__yes_skips_the_question_and_the_report_counts_skips() -> None:
    dead = JobFactory(status=JobStatus.DEAD, name="tests.testapp.jobs.noop")
    succeeded = JobFactory(status=JobStatus.SUCCEEDED, name="tests.testapp.jobs.noop")

    ran = jobs("retry", "--name", "tests.testapp.jobs.noop", "--yes")

    assert ran.out.strip().splitlines()[-1] == "1 job retried; 1 skipped: it succeeded."
    assert statuses(dead, succeeded) == ["queued", "succeeded"]


def test_retry__limit_takes_the_newest_matching_jobs() -> None:
    older, newer = JobFactory(status=JobStatus.DEAD), JobFactory(status=JobStatus.DEAD)

    jobs("retry", "--status", "dead", "--limit", "1")

    assert statuses(older, newer) == ["dead", "queued"]


def test_stop__ends_waiting_jobs_and_asks_running_ones_to_stop() -> None:
    queued = JobFactory(status=JobStatus.QUEUED, queue="imports")
    running = JobFactory(status=JobStatus.RUNNING, queue="imports", worker_id="w1")

    ran = jobs("stop", "--queue", "imports", "-y")

    assert ran.out.strip().splitlines()[-1] == "1 job stopped; 1 running job asked to stop."
    stopped, asked = Job.objects.get(pk=queued.pk), Job.objects.get(pk=running.pk)
    assert stopped.status == JobStatus.STOPPED
    assert "from the command line" in stopped.last_error
    assert (asked.status, asked.stop_requested_at is not None) == (JobStatus.RUNNING, True)


def test_deadletter__keeps_the_note_in_each_jobs_history() -> None:
    waiting = JobFactory(status=JobStatus.RETRYING)

    ran = jobs("deadletter", waiting.pk, "--note", "partner gone; INC-12")

    assert ran.out.strip().endswith("1 job dead-lettered.")
    row = Job.objects.get(pk=waiting.pk)
    assert row.status == JobStatus.DEAD
    assert row.history[-1]["note"] == "partner gone; INC-12"


def test_verbs__filters_that_match_nothing_change_nothing_and_succeed() -> None:
    JobFactory(status=JobStatus.QUEUED)

    ran = jobs("retry", "--status", "dead")

    assert (ran.code, ran.out.strip()) == (0, "No job matches; nothing changed.")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["retry"], "Say which jobs to retry: give their ids, or filters"),
        (["stop", "--limit", "5"], "Say which jobs to stop"),
        (["deadletter", "--note", "x" * 501], "--note has 501 characters; at most 500"),
        (["retry", "--status", "daed"], "did you mean 'dead'?"),
        (["stop", "--name", "tests.testapp.jobs.recrod"], "Did you mean 'tests.testapp.jobs.record'?"),
        (["retry", "--since", "last week"], "can't read 'last week'"),
    ],
)
def test_verbs__bad_input_exits_2_and_changes_nothing(args: list[str], says: str) -> None:
    job = JobFactory(status=JobStatus.DEAD)

    ran = jobs(*args)

    assert (ran.code, says in ran.err) == (2, True), ran
    assert statuses(job) == ["dead"]


def test_verbs__an_unknown_id_among_known_ones_changes_nothing() -> None:
    dead = JobFactory(status=JobStatus.DEAD)

    ran = jobs("retry", dead.pk, 987654, "--yes")

    assert (ran.code, ran.err) == (2, "No job has the id #987654; nothing changed.")
    assert statuses(dead) == ["dead"]
