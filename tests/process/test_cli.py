"""``python manage.py jobs …`` as real processes: what an operator's shell (or a cron script) sees,
exit codes and streams included."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from django_jobs.models import Job, JobStatus, Pause
from tests.support import REPO
from tests.support.factories import JobFactory
from tests.support.procs import database_url, runjobs_env

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]


def manage(*args: Any, url: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python manage.py jobs ARGS…`` against the test database, stdin not a terminal."""
    return subprocess.run(
        [sys.executable, "manage.py", "jobs", *map(str, args)],
        cwd=REPO, env=runjobs_env(url or database_url()), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120,
    )


def test_cli__list_json_is_valid_json_on_stdout() -> None:
    dead = JobFactory(status=JobStatus.DEAD, last_error="ValueError: boom")

    done = manage("list", "--status", "dead", "--json")

    assert done.returncode == 0, done.stderr
    assert [(row["id"], row["last_error"]) for row in json.loads(done.stdout)] == [
        (dead.pk, "ValueError: boom")
    ]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["list", "--status", "dea"], 2, "did you mean 'dead'?"),
        (["list", "--bogus"], 2, "unrecognized arguments: --bogus"),
        (["show", "424242"], 2, "No job has the id #424242."),
        (["retry", "--status", "dead"], 1, "There is no terminal to ask on: add --yes"),
        (["pause"], 2, "one of the arguments --queue --name is required"),
        ([], 2, "the following arguments are required: SUBCOMMAND"),
    ],
)
def test_cli__bad_input_exits_non_zero_with_a_message_and_no_traceback(
    args: list[str], code: int, says: str
) -> None:
    JobFactory(status=JobStatus.DEAD)
    JobFactory(status=JobStatus.DEAD)

    done = manage(*args)

    assert (done.returncode, says in done.stderr) == (code, True), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert Job.objects.filter(status=JobStatus.DEAD).count() == 2


def test_cli__every_subcommand_runs_as_a_process() -> None:
    dead = JobFactory(status=JobStatus.DEAD)
    queued = JobFactory(status=JobStatus.QUEUED)
    to_stop = JobFactory(status=JobStatus.QUEUED)

    runs = {
        "list": manage("list"),
        "show": manage("show", dead.pk),
        "retry": manage("retry", dead.pk),
        "stop": manage("stop", to_stop.pk),
        "deadletter": manage("deadletter", queued.pk, "--note", "retired"),
        "pause": manage("pause", "--queue", "emails"),
        "stats": manage("stats", "--json"),
    }
    runs["resume"] = manage("resume", "--queue", "emails")

    assert {name: done.returncode for name, done in runs.items()} == dict.fromkeys(runs, 0), {
        name: done.stderr for name, done in runs.items() if done.returncode
    }
    assert f"Job #{dead.pk}" in runs["show"].stdout
    assert [Job.objects.get(pk=j.pk).status for j in (dead, to_stop, queued)] == [
        JobStatus.QUEUED, JobStatus.STOPPED, JobStatus.DEAD,
    ]
    assert "Paused the queue 'emails'" in runs["pause"].stdout and not Pause.objects.exists()
    assert "queues" in json.loads(runs["stats"].stdout)


def test_cli__an_unreachable_database_is_a_message_not_a_traceback() -> None:
    # Port 9 (discard) has no PostgreSQL: the connection is refused at once.
    done = manage("list", url="postgres://postgres@127.0.0.1:9/nowhere")

    assert done.returncode == 1
    assert "The database refused the command or couldn't be reached" in done.stderr
    assert "Traceback" not in done.stderr
