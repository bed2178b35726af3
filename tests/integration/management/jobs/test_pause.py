"""``jobs pause`` and ``jobs resume``: a queue or a registered job name, as the overview's buttons."""

from __future__ import annotations

import pytest

from django_jobs.models import Pause
from tests.support.cli import jobs

pytestmark = pytest.mark.django_db

RECORD = "tests.testapp.jobs.record"


def test_pause__a_queue_then_resume_it_each_once() -> None:
    ran = jobs("pause", "--queue", "emails", "--reason", "SMTP down")

    assert ran.out.startswith("Paused the queue 'emails': workers finish what they are running")
    assert Pause.objects.get(kind="queue", value="emails").reason == "SMTP down"
    again = jobs("pause", "--queue", "emails")
    assert (again.code, again.out.strip()) == (0, "Nothing to do: the queue 'emails' was already paused.")

    assert jobs("resume", "--queue", "emails").out.startswith("Resumed the queue 'emails'")
    assert not Pause.objects.exists()
    again = jobs("resume", "--queue", "emails")
    assert (again.code, again.out.strip()) == (0, "Nothing to do: the queue 'emails' was not paused.")


def test_pause__a_job_name_must_be_registered() -> None:
    ran = jobs("pause", "--name", RECORD[:-1])

    assert ran.code == 2
    assert f"no job is registered as {RECORD[:-1]!r}. Did you mean {RECORD!r}?" in ran.err
    assert not Pause.objects.exists()

    assert jobs("pause", "--name", RECORD).code == 0
    assert Pause.objects.filter(kind="name", value=RECORD).exists()


def test_resume__a_name_not_paused_suggests_the_paused_one() -> None:
    Pause.objects.pause_job(RECORD)

    ran = jobs("resume", "--name", RECORD + "s")

    assert ran.code == 0
    assert f"was not paused. Did you mean {RECORD!r}?" in ran.out
    assert Pause.objects.filter(value=RECORD).exists()


def test_pause__a_queue_nothing_names_is_paused_with_a_note() -> None:
    ran = jobs("pause", "--queue", "emials")

    assert ran.code == 0
    assert "no registered job and no running worker names the queue 'emials'. Did you mean 'emails'?" in ran.err
    assert Pause.objects.filter(kind="queue", value="emials").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["pause"], "one of the arguments --queue --name is required"),
        (["pause", "--queue", "a", "--name", RECORD], "not allowed with argument"),
        (["pause", "--queue", "a,b"], "one queue at a time"),
        (["resume", "--queue", " "], "needs a queue name"),
        (["pause", "--queue", "a", "--reason", "x" * 256], "--reason has 256 characters"),
    ],
)
def test_pause__bad_input_exits_2(args: list[str], says: str) -> None:
    ran = jobs(*args)

    assert (ran.code, says in ran.err) == (2, True), ran
    assert not Pause.objects.exists()
