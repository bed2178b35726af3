"""audit.py through the admin: a LogEntry for each object an operator's action changed, none for
an action refused or that changed nothing, and the job's history naming the user."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_jobs.models import Job, Limit, Pause, Schedule
from tests.support.admin import RECORD, bulk_url, dead, do_url, login
from tests.support.factories import JobFactory
from tests.support.schedules import make

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("only_our_schedules")]
OVERVIEW = reverse("admin:django_jobs_queueoverview_changelist")


def entries(obj: object | None = None) -> list[LogEntry]:
    """The LogEntries, oldest first; only those of ``obj`` when given."""
    found = LogEntry.objects.order_by("pk")
    if obj is not None:
        found = found.filter(object_id=str(obj.pk), content_type__model=type(obj)._meta.model_name)  # type: ignore[attr-defined]
    return list(found)


# -- the verbs on jobs -------------------------------------------------------------------------


def test_retry_one__logs_the_job_and_its_history_names_the_user(client: Client) -> None:
    job = dead()

    client.post(do_url(job, "retry"))

    (entry,) = entries()
    assert (entry.action_flag, entry.user.username) == (CHANGE, "admin")
    assert entry.content_type.model_class() is Job and entry.object_id == str(job.pk)
    assert entry.change_message == "Retried from the admin."
    assert entry.object_repr == f"#{job.pk} {job.name}"
    last = Job.objects.get(pk=job.pk).history[-1]
    assert (last["event"], last["by"]) == ("retried", "admin")


def test_retry__on_a_running_job_changes_nothing_and_logs_nothing(client: Client) -> None:
    job = JobFactory(status="running")

    client.post(do_url(job, "retry"))

    assert Job.objects.get(pk=job.pk).status == "running"
    assert entries() == []


def test_retry__refused_without_the_permission_logs_nothing() -> None:
    job = dead()
    client = login("view_job", name="viewer")

    assert client.post(do_url(job, "retry")).status_code == 403
    assert entries() == []


def test_dead_letter__logs_the_note_and_the_history_keeps_who_and_why(client: Client) -> None:
    job = JobFactory(status="queued")

    client.post(do_url(job, "dead-letter"), {"note": "bad customer id"})

    (entry,) = entries(job)
    assert entry.change_message == "Dead-lettered from the admin. Note: bad customer id"
    last = Job.objects.get(pk=job.pk).history[-1]
    assert (last["event"], last["by"], last["note"]) == ("dead-lettered", "admin", "bad customer id")


def test_stop__logs_a_queued_job_stopped_and_a_running_one_asked(client: Client) -> None:
    queued, running = JobFactory(status="queued"), JobFactory(status="running")

    for job in (queued, running):
        client.post(do_url(job, "stop"))

    assert [e.object_id for e in entries()] == [str(queued.pk), str(running.pk)]
    assert Job.objects.get(pk=queued.pk).history[-1]["by"] == "admin"
    # A running job's history ends with its attempt, which its worker writes: no event before it.
    assert Job.objects.get(pk=running.pk).history == []


def test_bulk_retry__one_entry_per_job_changed_in_one_insert(client: Client) -> None:
    retried = [dead(name=RECORD) for _ in range(30)]
    JobFactory(status="running", name=RECORD)

    with CaptureQueriesContext(connection) as queries:
        client.post(bulk_url("retry", f"name={RECORD}"))

    assert sorted(int(e.object_id) for e in entries()) == sorted(j.pk for j in retried)
    inserts = [q for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "django_admin_log"')]
    assert len(inserts) == 1


def test_job_history_page__shows_the_entry(client: Client) -> None:
    job = dead()
    client.post(do_url(job, "retry"))

    page = client.get(reverse("admin:django_jobs_job_history", args=[job.pk]))

    assert "Retried from the admin." in page.content.decode()


def test_delete_job__logs_a_deletion(client: Client) -> None:
    job = dead()

    client.post(reverse("admin:django_jobs_job_delete", args=[job.pk]), {"post": "yes"})

    (entry,) = entries()
    assert (entry.action_flag, entry.object_id) == (DELETION, str(job.pk))


# -- pauses, limits, schedules -----------------------------------------------------------------


def test_overview_pause_and_resume__log_the_pause_once_each(client: Client) -> None:
    pause = reverse("admin:django_jobs_queueoverview_pause")
    resume = reverse("admin:django_jobs_queueoverview_resume")

    client.post(pause, {"kind": "queue", "value": "emails", "reason": "smtp down"})
    client.post(pause, {"kind": "queue", "value": "emails"})  # already paused: nothing changes
    client.post(resume, {"kind": "queue", "value": "emails"})
    client.post(resume, {"kind": "queue", "value": "emails"})  # not paused: nothing changes

    added, removed = entries()
    assert (added.action_flag, added.change_message) == (ADDITION, "Paused from the overview. Reason: smtp down")
    assert removed.action_flag == DELETION and removed.object_id == added.object_id
    assert removed.content_type.model_class() is Pause


def test_overview_pause__refused_without_the_permission_logs_nothing() -> None:
    client = login("view_queueoverview", name="viewer")

    response = client.post(reverse("admin:django_jobs_queueoverview_pause"), {"kind": "queue", "value": "emails"})

    assert response.status_code == 403 and entries() == []


def test_pauses_page__add_and_delete_are_logged(client: Client) -> None:
    client.post(reverse("admin:django_jobs_pause_add"), {"kind": "queue", "value": "emails", "reason": ""})
    pause = Pause.objects.get()
    client.post(reverse("admin:django_jobs_pause_delete", args=[pause.pk]), {"post": "yes"})

    assert [e.action_flag for e in entries(pause)] == [ADDITION, DELETION]


def test_limits_page__set_change_and_lift_are_logged(client: Client) -> None:
    add = {"kind": "queue", "value": "default", "concurrency": "4", "rate": "", "note": ""}
    client.post(reverse("admin:django_jobs_limit_add"), add)
    limit = Limit.objects.get()
    client.post(reverse("admin:django_jobs_limit_change", args=[limit.pk]), {**add, "concurrency": "2"})
    client.post(reverse("admin:django_jobs_limit_delete", args=[limit.pk]), {"post": "yes"})

    logged = entries(limit)
    assert [e.action_flag for e in logged] == [ADDITION, CHANGE, DELETION]
    assert "Concurrency" in logged[1].get_change_message()


def test_schedule_edit__is_logged_by_the_change_form(client: Client) -> None:
    schedule = make()
    form = {
        "name": schedule.name, "job_name": RECORD, "args": "[]", "kwargs": "{}", "cron": "5 * * * *",
        "timezone": "UTC", "catch_up": "once", "enabled": "on", "queue": "", "priority": "", "grace": "",
    }

    response = client.post(reverse("admin:django_jobs_schedule_change", args=[schedule.pk]), form)

    assert response.status_code == 302
    (entry,) = entries(schedule)
    assert entry.action_flag == CHANGE and "Cron" in entry.get_change_message()


def test_schedule_actions__log_each_schedule_changed_and_none_left_as_it_was(client: Client) -> None:
    on, off = make(name="on"), make(name="off", enabled=False)
    url = reverse("admin:django_jobs_schedule_changelist")

    def act(action: str, *schedules: Schedule) -> None:
        client.post(url, {"action": action, "_selected_action": [s.pk for s in schedules]})

    act("disable", on, off)  # only "on" changes
    act("enable", on, off)  # both change
    act("run_now", on)

    # Schedules in name order: "off" before "on".
    assert [(e.object_repr, e.change_message) for e in entries()[:3]] == [
        ("on", "Disabled."), ("off", "Enabled."), ("on", "Enabled."),
    ]
    (ran,) = entries()[3:]
    job = Job.objects.get(schedule=on)
    assert (ran.object_repr, ran.change_message) == ("on", f"Ran now: enqueued job #{job.pk}.")


def test_log_jobs__builds_each_chunk_only_when_the_one_before_is_inserted(monkeypatch: pytest.MonkeyPatch) -> None:
    # A retry of a million jobs from the command line must not hold a million unsaved entries.
    from django.contrib.auth.models import User

    from django_jobs import audit
    from django_jobs.models import Transitioned

    monkeypatch.setattr(audit, "INSERT_BATCH", 3)
    built: list[int] = []
    built_at_insert: list[int] = []
    init = LogEntry.__init__

    def counting_init(self: LogEntry, *args: object, **kwargs: object) -> None:
        built.append(1)
        init(self, *args, **kwargs)

    bulk_create = LogEntry.objects.bulk_create

    def recording_bulk_create(entries: list[LogEntry], *args: object, **kwargs: object) -> object:
        built_at_insert.append(len(built))
        return bulk_create(entries, *args, **kwargs)

    monkeypatch.setattr(LogEntry, "__init__", counting_init)
    monkeypatch.setattr(LogEntry.objects, "bulk_create", recording_bulk_create)
    user = User.objects.create_user("carol")

    assert audit.log_jobs(user, Transitioned(changed={n: "shop.sync" for n in range(1, 8)}), "Retried.") == 7

    assert built_at_insert == [3, 6, 7]
    assert sorted(int(e.object_id) for e in LogEntry.objects.filter(user=user)) == list(range(1, 8))
