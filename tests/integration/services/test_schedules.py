"""services/schedules.py: dead-man alerts. A schedule whose tick gives no succeeded job within its
grace is flagged (admin, overview, metrics) and mailed about once per interval, whichever worker
checks; a success clears the flag and is kept when pruning deletes the job."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import django
import psycopg
import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_jobs import metrics, stats
from django_jobs.models import Job, JobStatus, Pause, Schedule
from django_jobs.scheduler import fire_due
from django_jobs.services import ServiceContext
from django_jobs.services import schedules as watcher
from tests.conftest import connect
from tests.support.procs import wait_until
from tests.support.schedules import T0, make

pytestmark = pytest.mark.usefixtures("only_our_schedules")
ADMINS = ["ops@example.com"] if django.VERSION >= (6, 0) else [("Ops", "ops@example.com")]
# An hourly schedule made at T0 (09:00:30): its first tick is 10:00; the default grace an hour.
TICK = T0.replace(hour=10, minute=0, second=0)


@pytest.fixture
def mail_on_missed(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings.ADMINS = ADMINS
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "MAIL_ADMINS_ON_MISSED": True, "MAIL_ADMINS_INTERVAL": 600}
    monkeypatch.setattr(watcher, "SEND_IN_BACKGROUND", False)
    return settings


def paused_tick(schedule: Schedule) -> Job:
    """The queue is paused, so the 10:00 tick's job waits, queued."""
    Pause.objects.pause_queue("default", "maintenance")
    (job,) = fire_due("default", TICK + timedelta(seconds=1))
    assert job.schedule_id == schedule.pk and job.queue == "default"
    return job


def succeed(job: Job, at: Any) -> None:
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, finished_at=at)


def flagged(now: Any) -> list[str]:
    return [m.schedule.name for m in watcher.missed_schedules("default", now=now)]


# -- the flag ----------------------------------------------------------------------------------


def test_missed_tick__within_the_grace_no_flag_then_one_past_it() -> None:
    schedule = Schedule(cron="0 * * * *", timezone="UTC", enabled=True, created_at=T0, grace=600)

    assert schedule.missed_tick(TICK + timedelta(minutes=9)) is None  # 10:00 still within its grace
    assert schedule.missed_tick(TICK + timedelta(minutes=10)) == TICK
    assert schedule.missed_tick(TICK + timedelta(minutes=10), last_success=TICK + timedelta(minutes=2)) is None
    # A success before the tick doesn't count for it.
    assert schedule.missed_tick(TICK + timedelta(minutes=10), last_success=TICK - timedelta(minutes=1)) == TICK


def test_missed_tick__ticks_before_the_schedule_was_watched_dont_count() -> None:
    schedule = Schedule(cron="0 * * * *", timezone="UTC", enabled=True, created_at=T0, watched_from=TICK + timedelta(seconds=1))

    assert schedule.missed_tick(TICK + timedelta(hours=1, minutes=59)) is None  # 10:00 was before
    assert schedule.missed_tick(TICK + timedelta(hours=2)) == TICK + timedelta(hours=1)
    schedule.enabled = False
    assert schedule.missed_tick(TICK + timedelta(hours=2)) is None


@pytest.mark.django_db
def test_paused_past_its_grace__flagged_and_mailed_once(mail_on_missed: Any) -> None:
    schedule = make(name="nightly")
    paused_tick(schedule)

    assert watcher.watch("default", now=TICK + timedelta(minutes=59)) == []
    missed = watcher.watch("default", now=TICK + timedelta(hours=1))
    again = watcher.watch("default", now=TICK + timedelta(hours=1, minutes=5))

    assert [m.tick for m in missed] == [TICK] and [m.tick for m in again] == [TICK]
    (sent,) = mail.outbox
    assert sent.subject == "[Django] Schedule nightly missed its run of 2030-01-07 10:00 UTC"
    assert "No job of it has succeeded yet." in sent.body
    assert f"/admin/django_jobs/schedule/{schedule.pk}/change/" in sent.body
    # Still missed after the interval: one more mail, a reminder.
    watcher.watch("default", now=TICK + timedelta(hours=1, minutes=10))
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_mail__off_unless_asked(settings: Any) -> None:
    settings.ADMINS = ADMINS
    paused_tick(make())

    assert len(watcher.watch("default", now=TICK + timedelta(hours=2))) == 1
    assert mail.outbox == []
    # None (the default) follows MAIL_ADMINS_ON_DEAD.
    settings.DJANGO_JOBS = {**settings.DJANGO_JOBS, "MAIL_ADMINS_ON_DEAD": True}
    assert watcher.mail_on_missed() is True


@pytest.mark.django_db
def test_succeeding_schedule__not_flagged() -> None:
    schedule = make()
    (job,) = fire_due("default", TICK + timedelta(seconds=1))
    succeed(job, TICK + timedelta(seconds=5))

    assert flagged(TICK + timedelta(hours=1, minutes=30)) == []
    assert [p.problem for p in stats.schedule_problems("default", now=TICK + timedelta(hours=1, minutes=30))] == []
    assert Schedule.objects.get(pk=schedule.pk).last_success_at is None  # not stored yet
    watcher.watch("default", now=TICK + timedelta(hours=1, minutes=30))
    assert Schedule.objects.get(pk=schedule.pk).last_success_at == TICK + timedelta(seconds=5)


@pytest.mark.django_db
def test_flag__clears_after_a_success_and_stays_clear_once_the_job_is_pruned() -> None:
    schedule = make(name="nightly")
    job = paused_tick(schedule)
    assert flagged(TICK + timedelta(hours=1)) == ["nightly"]

    Pause.objects.resume_queue("default")
    succeed(job, TICK + timedelta(hours=1, minutes=1))
    assert flagged(TICK + timedelta(hours=1, minutes=2)) == []

    watcher.watch("default", now=TICK + timedelta(hours=1, minutes=2))  # stores the success
    job.delete()  # pruned
    assert flagged(TICK + timedelta(hours=1, minutes=2)) == []
    # The late success (11:01) counts for the 11:00 tick too; 12:00's is missed in its turn.
    assert flagged(TICK + timedelta(hours=2, minutes=59)) == []
    assert flagged(TICK + timedelta(hours=3)) == ["nightly"]


@pytest.mark.django_db(transaction=True)
def test_two_checks_at_once__send_one_mail(
    mail_on_missed: Any, second_connection: psycopg.Connection[Any]
) -> None:
    schedule = make(name="nightly")
    paused_tick(schedule)
    now = TICK + timedelta(hours=1)
    # Another worker's check is half-way: it has claimed the mail and not committed yet.
    second_connection.execute("BEGIN")
    second_connection.execute(
        f"UPDATE {Schedule._meta.db_table} SET missed_mailed_at = %s WHERE id = %s", [now, schedule.pk]
    )
    done: list[Any] = []
    ours = threading.Thread(target=lambda: done.append(_watch_in_thread(now)))
    ours.start()

    def blocked_on_the_row() -> bool:
        assert ours.is_alive(), f"our check did not wait: {done}"
        with connect() as observer:
            row = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchone()
        return bool(row and row[0])

    wait_until(blocked_on_the_row, message="our check to wait for the other's row lock")
    second_connection.execute("COMMIT")  # the other worker sends its mail
    ours.join(timeout=10)

    assert [[m.tick for m in found] for found in done] == [[TICK]]  # flagged, but…
    assert mail.outbox == []  # …the mail was the other worker's


def _watch_in_thread(now: Any) -> list[watcher.Missed]:
    try:
        return watcher.watch("default", now=now)
    finally:
        connection.close()


@pytest.mark.django_db
def test_service__runs_the_watch_every_interval() -> None:
    service = watcher.ScheduleWatch(ServiceContext(using="default", worker_id="w", clock=timezone.now))

    assert service.name == "schedule-watch"
    assert service.run(T0) == watcher.WATCH_INTERVAL


# -- where the flag shows --------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics__last_success_and_missed_per_schedule() -> None:
    ok, late = make(name="ok"), make(name="late", cron="30 * * * *")
    (ok_job, _) = sorted(fire_due("default", TICK + timedelta(minutes=31)), key=lambda j: j.schedule_id != ok.pk)
    succeed(ok_job, TICK + timedelta(minutes=1))

    text = metrics.render("default", now=TICK + timedelta(hours=1, minutes=45))

    stamp = (TICK + timedelta(minutes=1)).timestamp()
    assert f'django_jobs_schedule_last_success_timestamp_seconds{{schedule="ok",name="{ok.job_name}"}} {stamp:.0f}' in text
    assert f'django_jobs_schedule_missed{{schedule="ok",name="{ok.job_name}"}} 0' in text
    assert f'django_jobs_schedule_missed{{schedule="late",name="{late.job_name}"}} 1' in text
    assert 'problem="missed"' in text


@pytest.mark.django_db
def test_admin__the_schedule_page_list_and_overview_show_the_flag(settings: Any) -> None:
    schedule = make(name="nightly", now=timezone.now() - timedelta(days=1), grace=60)
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "a@example.com", "pw"))

    page = client.get(reverse("admin:django_jobs_schedule_change", args=[schedule.pk])).content.decode()
    listing = client.get(reverse("admin:django_jobs_schedule_changelist")).content.decode()
    overview = client.get(reverse("admin:django_jobs_queueoverview_changelist")).content.decode()

    assert "Missed: no job succeeded within 1 min of its tick at" in page
    assert "dj-missed" in listing
    assert "Missed its run" in overview
