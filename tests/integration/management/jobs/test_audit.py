"""``manage.py jobs`` and the audit trail: with ``--user`` (or a login name that is a site user),
each object changed gets a LogEntry; without a user, none, and the job's history still names the
operator."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import User

from django_jobs.cli import acting
from django_jobs.models import Job, JobStatus
from tests.support.cli import jobs
from tests.support.factories import JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", is_staff=True)


@pytest.fixture
def login(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shell's login name is "bob", who has no site account."""
    monkeypatch.setattr(acting.getpass, "getuser", lambda: "bob")


def test_retry_with_user__logs_each_job_retried_and_none_skipped(alice: User, login: None) -> None:
    dead = [JobFactory(status=JobStatus.DEAD) for _ in range(2)]
    running = JobFactory(status=JobStatus.RUNNING)

    ran = jobs("retry", *(j.pk for j in [*dead, running]), "--user", "alice", "--yes")

    assert ran.code == 0, ran.err
    logged = LogEntry.objects.order_by("object_id")
    assert [(e.object_id, e.user_id, e.action_flag) for e in logged] == [
        (str(j.pk), alice.pk, CHANGE) for j in dead
    ]
    assert {e.change_message for e in logged} == {"Retried from the command line."}
    assert Job.objects.get(pk=dead[0].pk).history[-1]["by"] == "alice"


def test_deadletter__the_login_name_is_the_user_when_one_matches(
    monkeypatch: pytest.MonkeyPatch, alice: User
) -> None:
    monkeypatch.setattr(acting.getpass, "getuser", lambda: "alice")
    job = JobFactory(status=JobStatus.QUEUED)

    assert jobs("deadletter", job.pk, "--note", "bad data").code == 0

    (entry,) = LogEntry.objects.all()
    assert (entry.user_id, entry.change_message) == (
        alice.pk, "Dead-lettered from the command line. Note: bad data"
    )


def test_stop__without_a_matching_user_no_entry_but_the_history_names_the_login(login: None) -> None:
    job = JobFactory(status=JobStatus.QUEUED)

    assert jobs("stop", job.pk).code == 0

    assert not LogEntry.objects.exists()
    last = Job.objects.get(pk=job.pk).history[-1]
    assert (last["event"], last["by"]) == ("stopped", "bob")


def test_unknown_user__is_refused_before_anything_changes(login: None) -> None:
    job = JobFactory(status=JobStatus.DEAD)

    ran = jobs("retry", job.pk, "--user", "nobody")

    assert ran.code == 2
    assert "--user: no active user is named 'nobody'" in ran.err
    assert Job.objects.get(pk=job.pk).status == JobStatus.DEAD
    assert not LogEntry.objects.exists()


def test_pause_and_resume__log_the_pause(alice: User, login: None) -> None:
    assert jobs("pause", "--queue", "emails", "--reason", "smtp down", "--user", "alice").code == 0
    assert jobs("pause", "--queue", "emails", "--user", "alice").code == 0  # already paused
    assert jobs("resume", "--queue", "emails", "--user", "alice").code == 0
    assert jobs("resume", "--queue", "emails", "--user", "alice").code == 0  # not paused

    added, removed = LogEntry.objects.order_by("pk")
    assert (added.action_flag, added.change_message) == (
        ADDITION, "Paused from the command line by alice. Reason: smtp down"
    )
    assert (removed.action_flag, removed.object_id) == (DELETION, added.object_id)


def test_inactive_user__is_refused_like_an_unknown_one(alice: User) -> None:
    User.objects.filter(pk=alice.pk).update(is_active=False)

    ran = jobs("retry", JobFactory(status=JobStatus.DEAD).pk, "--user", "alice")

    assert ran.code == 2 and "no active user is named 'alice'" in ran.err


# A project with only django_jobs installed (no admin, auth or contenttypes): the quickstart's.
MINIMAL_PROJECT = """
import django, sys
from django.conf import settings
settings.configure(INSTALLED_APPS=["django_jobs"], USE_TZ=True,
                   DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
django.setup()
from django.core.management import CommandError, call_command, load_command_class
load_command_class("django_jobs", "jobs")
try:
    call_command("jobs", "retry", "1", "--user", "alice")
except CommandError as exc:
    print("refused:", exc)
"""


@pytest.mark.django_db(databases=[])
def test_without_the_admin__the_command_loads_and_user_says_why_it_cant_log() -> None:
    import subprocess
    import sys

    from tests.support import REPO

    done = subprocess.run([sys.executable, "-c", MINIMAL_PROJECT], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    assert "refused: --user: this project keeps no audit trail" in done.stdout, done.stdout
