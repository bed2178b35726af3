"""scheduler.py: which ticks fire when (time injected), catch-up, DST, edits, code-declared
schedules, and real processes racing on the same schedules."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connections, transaction

from django_jobs.models import Job, Schedule
from django_jobs.scheduler import fire_due, sync_declared, ticks_to_fire
from tests.support.procs import wait_lock_waiter
from tests.support.schedules import RECORD, T0, UTC, jobs_settings, make, ticks_of
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.usefixtures("only_our_schedules")


def at(hour: int, minute: int = 0, second: float = 0, day: int = 7) -> datetime:
    return datetime(2030, 1, day, hour, minute, tzinfo=UTC) + timedelta(seconds=second)


def reload(schedule: Schedule) -> Schedule:
    return Schedule.objects.get(pk=schedule.pk)


def fire(now: datetime) -> list[Job]:
    return fire_due("default", now, worker_id="test")


# -- firing ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_save__sets_next_run_at_to_the_first_tick_after_now() -> None:
    assert make("0 * * * *").next_run_at == at(10)
    assert make("30 9 * * *").next_run_at == at(9, 30)


@pytest.mark.django_db
def test_fire__nothing_before_next_run_at() -> None:
    schedule = make("0 * * * *")

    assert fire(at(9, 59, 59.999)) == []
    assert reload(schedule).next_run_at == at(10)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_fire__a_due_tick_enqueues_one_job_and_moves_to_the_next_tick() -> None:
    schedule = make("0 * * * *", kwargs={"label": "hourly"})
    now = at(10, second=0.4)

    [job] = fire(now)

    job = Job.objects.get(pk=job.pk)
    assert (job.name, job.kwargs, job.schedule_id, job.scheduled_for) == (RECORD, {"label": "hourly"}, schedule.pk, at(10))
    assert job.run_at == now and job.queue == "default"
    schedule = reload(schedule)
    assert (schedule.next_run_at, schedule.last_run_at, schedule.last_job_id) == (at(11), now, job.pk)
    assert schedule.last_error == ""


@pytest.mark.django_db
def test_fire__the_same_moment_twice_enqueues_once() -> None:
    make("0 * * * *")

    assert len(fire(at(10, second=1))) == 1
    assert fire(at(10, second=1)) == []
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_fire__queue_and_priority_overrides_apply() -> None:
    make("0 * * * *", queue="reports", priority=7)
    make("0 * * * *")

    jobs = fire(at(10))

    assert sorted((j.queue, j.priority) for j in jobs) == [("default", 0), ("reports", 7)]


@pytest.mark.django_db
def test_fire__a_job_this_process_does_not_know_is_left_to_workers_that_do() -> None:
    schedule = make("0 * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(job_name="deployed.later.job")

    assert fire(at(12)) == []
    assert reload(schedule).next_run_at == at(10)


@pytest.mark.django_db
def test_fire__arguments_the_job_no_longer_accepts_are_reported_on_the_schedule(caplog: Any) -> None:
    schedule = make("0 * * * *", job_name="tests.add", args=[1, 2])
    Schedule.objects.filter(pk=schedule.pk).update(args=[1, 2, 3])

    assert fire(at(10)) == []

    schedule = reload(schedule)
    assert "Can't enqueue 'tests.add': too many positional arguments" in schedule.last_error
    assert schedule.next_run_at == at(11)  # not retried every second
    assert "event=schedule_failed" in caplog.text


@pytest.mark.django_db
def test_fire__a_bad_cron_written_around_validation_parks_the_schedule() -> None:
    schedule = make("0 * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(cron="61 * * * *")

    assert fire(at(10)) == []

    schedule = reload(schedule)
    assert schedule.next_run_at is None
    assert "the minute field '61' is not valid" in schedule.last_error
    assert fire(at(23)) == []


@pytest.fixture
def enqueue_fails_for() -> Iterator[Callable[[str, Callable[[], None]], None]]:
    """Make the job_enqueued receiver fail, with ``fail()``, for jobs whose label is ``label``."""
    from django_jobs.signals import job_enqueued

    failing: dict[str, Callable[[], None]] = {}

    def receiver(sender: Any, job: Job, **kwargs: Any) -> None:
        fail = failing.get(job.kwargs.get("label", ""))
        if fail is not None:
            fail()

    job_enqueued.connect(receiver, dispatch_uid="tests.enqueue_fails_for")
    yield failing.__setitem__
    job_enqueued.disconnect(dispatch_uid="tests.enqueue_fails_for")


def division_by_zero() -> None:
    """A database error (DataError) in the scheduler's transaction, as a bad value would give."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")


def raise_value_error() -> None:
    raise ValueError("the receiver is broken")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fail", "said"),
    [(division_by_zero, "DataError: division by zero"), (raise_value_error, "ValueError: the receiver is broken")],
)
def test_fire__a_schedule_whose_enqueue_raises_is_recorded_and_the_others_still_fire(
    enqueue_fails_for: Callable[[str, Callable[[], None]], None], fail: Callable[[], None], said: str, caplog: Any,
) -> None:
    broken = make("0 * * * *", name="broken", kwargs={"label": "broken"})
    fine = make("0 * * * *", name="fine", kwargs={"label": "fine"})
    enqueue_fails_for("broken", fail)

    jobs = fire(at(10))

    assert [j.schedule_id for j in jobs] == [fine.pk]
    assert ticks_of(fine) == [at(10)] and ticks_of(broken) == []  # its insert was undone
    broken, fine = reload(broken), reload(fine)
    assert said in broken.last_error and fine.last_error == ""
    assert broken.last_job_id is None
    # Retried at its next tick, not on every pass: the others are never stuck behind it.
    assert broken.next_run_at == at(11) and fine.next_run_at == at(11)
    assert fire(at(10, 30)) == []
    assert "event=schedule_failed schedule=broken" in caplog.text


@pytest.mark.django_db
def test_fire__a_failed_schedule_fires_again_at_its_next_tick_and_its_error_clears(
    enqueue_fails_for: Callable[[str, Callable[[], None]], None],
) -> None:
    schedule = make("0 * * * *", kwargs={"label": "flaky"})
    enqueue_fails_for("flaky", raise_value_error)
    fire(at(10))
    assert reload(schedule).last_error

    enqueue_fails_for("flaky", lambda: None)
    [job] = fire(at(11))

    schedule = reload(schedule)
    assert (schedule.last_error, schedule.last_job_id, ticks_of(schedule)) == ("", job.pk, [at(11)])


@pytest.mark.django_db
def test_fire__catching_up_keeps_the_ticks_enqueued_before_one_that_fails(
    enqueue_fails_for: Callable[[str, Callable[[], None]], None],
) -> None:
    schedule = make("0 * * * *", catch_up="all", kwargs={"label": "flaky"})
    calls: list[int] = []

    def third_fails() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("third tick")

    enqueue_fails_for("flaky", third_fails)

    fire(at(13, 30))

    schedule = reload(schedule)
    assert ticks_of(schedule) == [at(10), at(11)]
    assert "ValueError: third tick" in schedule.last_error
    assert schedule.next_run_at == at(14)


@pytest.mark.django_db
def test_fire__an_error_text_postgresql_cannot_store_is_recorded_anyway(
    enqueue_fails_for: Callable[[str, Callable[[], None]], None],
) -> None:
    schedule = make("0 * * * *", kwargs={"label": "odd"})

    def unstorable() -> None:
        raise ValueError("nul \x00 and a lone surrogate \udcff")

    enqueue_fails_for("odd", unstorable)

    fire(at(10))

    assert reload(schedule).last_error == "ValueError: nul \\x00 and a lone surrogate \\udcff"


@pytest.mark.django_db(transaction=True)
def test_worker__one_failing_schedule_does_not_stop_the_others(
    run_worker: Callable[..., Any], enqueue_fails_for: Callable[[str, Callable[[], None]], None],
) -> None:
    broken = make("0 * * * *", name="broken", kwargs={"label": "broken"})
    fine = make("0 * * * *", name="fine", kwargs={"label": "fine"})
    Schedule.objects.update(next_run_at=T0 - timedelta(hours=1))
    enqueue_fails_for("broken", division_by_zero)

    run_worker(scheduler=True, clock=lambda: T0)

    assert Job.objects.get(schedule=fine).status == "succeeded"
    assert SideEffect.objects.filter(label="fine").count() == 1
    assert not Job.objects.filter(schedule=broken).exists()
    assert "DataError: division by zero" in reload(broken).last_error


@pytest.mark.django_db
def test_fire__a_disabled_schedule_never_fires() -> None:
    schedule = make("0 * * * *")
    Schedule.objects.filter(pk=schedule.pk).update(enabled=False)

    assert fire(at(12)) == []


@pytest.mark.django_db
def test_fire__a_tick_already_enqueued_is_not_enqueued_again(caplog: Any) -> None:
    # An edit on a machine whose clock is behind can move next_run_at back onto a fired tick.
    schedule = make("0 * * * *")
    fire(at(10, second=2))
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=at(10))

    assert fire(at(10, second=3)) == []

    assert ticks_of(schedule) == [at(10)]
    assert reload(schedule).next_run_at == at(11)
    assert "event=schedule_tick_taken" in caplog.text


@pytest.mark.django_db
def test_job_table__refuses_a_second_job_for_the_same_tick() -> None:
    schedule = make("0 * * * *")
    Job.objects.create(name=RECORD, schedule=schedule, scheduled_for=at(10))
    Job.objects.create(name=RECORD, schedule=schedule)  # run now: no tick, no limit
    Job.objects.create(name=RECORD, schedule=schedule)

    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(name=RECORD, schedule=schedule, scheduled_for=at(10))


@pytest.mark.django_db(transaction=True)
def test_fire__a_schedule_another_worker_has_locked_is_skipped_not_waited_for(second_connection: Any) -> None:
    locked = make("0 * * * *", name="locked")
    free = make("0 * * * *", name="free")
    with second_connection.transaction():
        second_connection.execute(f"SELECT id FROM {Schedule._meta.db_table} WHERE id = %s FOR UPDATE", [locked.pk])

        jobs = fire(at(10))

    assert [j.schedule_id for j in jobs] == [free.pk]
    assert reload(locked).next_run_at == at(10)
    assert len(fire(at(10))) == 1  # released: now it fires


# -- catch-up --------------------------------------------------------------------------------------

# Hourly from 10:00, with no worker running until 13:30: the 10, 11, 12 and 13 o'clock ticks are due.


@pytest.mark.django_db
def test_catch_up_skip__drops_ticks_later_than_the_grace() -> None:
    schedule = make("0 * * * *", catch_up="skip")

    assert fire(at(13, 30)) == []
    assert reload(schedule).next_run_at == at(14)


@pytest.mark.django_db
def test_catch_up_skip__a_tick_within_the_grace_still_fires() -> None:
    schedule = make("0 * * * *", catch_up="skip")

    fire(at(13, 0, 59))

    assert ticks_of(schedule) == [at(13)]


@pytest.mark.django_db
def test_catch_up_skip__the_grace_is_a_setting() -> None:
    schedule = make("0 * * * *", catch_up="skip")

    with jobs_settings(SCHEDULE_MISFIRE_GRACE=2 * 3600):
        fire(at(13, 30))

    assert ticks_of(schedule) == [at(12), at(13)]


@pytest.mark.django_db
def test_catch_up_once__one_job_for_the_latest_missed_tick(caplog: Any) -> None:
    schedule = make("0 * * * *", catch_up="once")

    fire(at(13, 30))

    assert ticks_of(schedule) == [at(13)]
    assert reload(schedule).next_run_at == at(14)
    assert "event=schedule_missed" in caplog.text and "policy=once" in caplog.text


@pytest.mark.django_db
def test_catch_up_all__one_job_per_missed_tick() -> None:
    schedule = make("0 * * * *", catch_up="all")

    fire(at(13, 30))

    assert ticks_of(schedule) == [at(10), at(11), at(12), at(13)]
    assert reload(schedule).next_run_at == at(14)


@pytest.mark.django_db
def test_catch_up_all__keeps_the_latest_ticks_up_to_the_cap() -> None:
    schedule = make("0 * * * *", catch_up="all")

    with jobs_settings(SCHEDULE_CATCH_UP_MAX=2):
        fire(at(13, 30))

    assert ticks_of(schedule) == [at(12), at(13)]


@pytest.mark.django_db
def test_catch_up_all__a_year_of_missed_minutes_enqueues_the_latest_up_to_the_cap() -> None:
    schedule = make("* * * * *", catch_up="all")
    now = T0 + timedelta(days=365)

    with jobs_settings(SCHEDULE_CATCH_UP_MAX=3):
        fire(now)

    assert ticks_of(schedule) == [now.replace(second=0) - timedelta(minutes=k) for k in (2, 1, 0)]


@pytest.mark.django_db
def test_ticks_to_fire__is_empty_until_next_run_at() -> None:
    schedule = make("0 * * * *", catch_up="all")

    assert ticks_to_fire(schedule, at(9, 59)) == []
    assert ticks_to_fire(schedule, at(10)) == [at(10)]


# -- daylight saving, in Europe/Berlin ---------------------------------------------------------------


@pytest.mark.django_db
def test_dst__on_the_spring_night_0230_fires_once_at_0300_summer_time() -> None:
    schedule = make("30 2 * * *", timezone="Europe/Berlin", now=datetime(2025, 3, 29, 12, tzinfo=UTC))
    tick = datetime(2025, 3, 30, 1, 0, tzinfo=UTC)  # 03:00 CEST: 02:30 doesn't exist that night
    assert schedule.next_run_at == tick

    assert fire(tick - timedelta(seconds=1)) == []
    [job] = fire(tick + timedelta(seconds=1))

    assert job.scheduled_for == tick
    assert reload(schedule).next_run_at == datetime(2025, 3, 31, 0, 30, tzinfo=UTC)  # 02:30 CEST


@pytest.mark.django_db
def test_dst__on_the_autumn_night_0230_fires_in_both_hours() -> None:
    schedule = make("30 2 * * *", timezone="Europe/Berlin", now=datetime(2025, 10, 25, 12, tzinfo=UTC))
    first, second = datetime(2025, 10, 26, 0, 30, tzinfo=UTC), datetime(2025, 10, 26, 1, 30, tzinfo=UTC)

    fire(first + timedelta(seconds=1))
    assert reload(schedule).next_run_at == second
    fire(second + timedelta(seconds=1))

    assert ticks_of(schedule) == [first, second]
    assert reload(schedule).next_run_at == datetime(2025, 10, 27, 1, 30, tzinfo=UTC)


@pytest.mark.django_db
def test_dst__catching_up_all_across_the_autumn_night_enqueues_both_0230s() -> None:
    schedule = make("30 2 * * *", timezone="Europe/Berlin", catch_up="all", now=datetime(2025, 10, 25, 12, tzinfo=UTC))

    fire(datetime(2025, 10, 26, 12, tzinfo=UTC))

    assert ticks_of(schedule) == [datetime(2025, 10, 26, 0, 30, tzinfo=UTC), datetime(2025, 10, 26, 1, 30, tzinfo=UTC)]


# -- edits -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_edit__a_new_cron_recomputes_next_run_at_at_once() -> None:
    schedule = make("0 * * * *")

    schedule.cron = "45 9 * * *"
    schedule.save(now=at(9, 10))

    assert reload(schedule).next_run_at == at(9, 45)


@pytest.mark.django_db
def test_edit__a_new_timezone_recomputes_next_run_at_at_once() -> None:
    schedule = make("0 12 * * *")
    assert schedule.next_run_at == at(12)

    schedule.timezone = "Asia/Tokyo"  # UTC+9: noon there is 03:00 UTC
    schedule.save(now=T0)

    assert reload(schedule).next_run_at == at(3, day=8)


@pytest.mark.django_db
def test_edit__other_fields_leave_a_due_tick_due() -> None:
    schedule = make("0 * * * *", catch_up="all")

    schedule = reload(schedule)
    schedule.kwargs = {"label": "edited"}
    schedule.save(now=at(12, 30))

    assert reload(schedule).next_run_at == at(10)
    assert len(fire(at(12, 30))) == 3


@pytest.mark.django_db
def test_disable__stops_ticks_and_clears_next_run_at() -> None:
    schedule = make("0 * * * *")

    assert schedule.disable() is True
    assert schedule.disable() is False

    assert reload(schedule).next_run_at is None
    assert fire(at(12)) == []


@pytest.mark.django_db
def test_enable__starts_from_now_without_replaying_ticks_missed_while_disabled() -> None:
    schedule = make("0 * * * *", catch_up="all")
    schedule.disable()

    assert schedule.enable(now=at(13, 30)) is True
    assert schedule.enable(now=at(13, 30)) is False

    assert reload(schedule).next_run_at == at(14)
    assert fire(at(13, 30)) == []


@pytest.mark.django_db
def test_queryset_enable_and_disable__count_the_schedules_they_changed() -> None:
    make("0 * * * *", name="a")
    make("0 * * * *", name="b", enabled=False)

    assert Schedule.objects.disable() == 1
    assert Schedule.objects.enable(now=at(13, 30)) == 2
    assert set(Schedule.objects.values_list("next_run_at", flat=True)) == {at(14)}


# -- run now ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_run_now__enqueues_outside_the_rhythm_linked_to_the_schedule() -> None:
    schedule = make("0 * * * *", kwargs={"label": "manual"})

    first, second = schedule.run_now(now=at(9, 20)), schedule.run_now(now=at(9, 21))

    assert [(j.schedule_id, j.scheduled_for, j.kwargs) for j in (first, second)] == [(schedule.pk, None, {"label": "manual"})] * 2
    schedule = reload(schedule)
    assert (schedule.last_job_id, schedule.last_run_at, schedule.next_run_at) == (second.pk, at(9, 21), at(10))


# -- the service -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker__fires_a_due_schedule_and_runs_its_job(run_worker: Callable[..., Any]) -> None:
    schedule = make("0 * * * *", kwargs={"label": "from cron"})
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=T0 - timedelta(hours=1))

    run_worker(scheduler=True, clock=lambda: T0)

    job = Job.objects.get(schedule=schedule)
    assert job.status == "succeeded"
    assert SideEffect.objects.filter(job_id=job.pk, label="from cron").count() == 1


# -- schedules declared in code ----------------------------------------------------------------------


@pytest.mark.django_db
def test_sync__creates_code_schedules_from_job_cron_and_settings(declare: Callable[..., Any]) -> None:
    declare("tests.scheduler.nightly", "5 0 * * *")
    entries = {"weekly-report": {"job": "tests.add", "cron": "0 6 * * mon", "args": [1, 2], "timezone": "Europe/Berlin",
                                 "catch_up": "skip", "queue": "reports", "priority": 3}}

    with jobs_settings(SCHEDULES=entries):
        counts = sync_declared("default", T0)

    assert counts == {"created": 2, "updated": 0, "deleted": 0}
    nightly = Schedule.objects.get(name="tests.scheduler.nightly")
    assert (nightly.job_name, nightly.cron, nightly.timezone, nightly.source) == ("tests.scheduler.nightly", "5 0 * * *", "UTC", "code")
    assert nightly.next_run_at == at(0, 5, day=8)
    weekly = Schedule.objects.get(name="weekly-report")
    assert (weekly.job_name, weekly.args, weekly.catch_up, weekly.queue, weekly.priority) == ("tests.add", [1, 2], "skip", "reports", 3)
    assert weekly.next_run_at == datetime(2030, 1, 14, 5, tzinfo=UTC)  # 06:00 CET, next Monday


@pytest.mark.django_db
def test_sync__twice_changes_nothing(declare: Callable[..., Any]) -> None:
    declare("tests.scheduler.nightly", "5 0 * * *")
    sync_declared("default", T0)

    assert sync_declared("default", at(12)) == {"created": 0, "updated": 0, "deleted": 0}
    assert Schedule.objects.get().next_run_at == at(0, 5, day=8)


@pytest.mark.django_db
def test_sync__code_overwrites_what_it_declares_but_keeps_the_operators_enabled_flag(declare: Callable[..., Any]) -> None:
    declare("tests.scheduler.nightly", "5 0 * * *")
    sync_declared("default", T0)
    row = Schedule.objects.get()
    row.disable()
    Schedule.objects.filter(pk=row.pk).update(cron="0 3 * * *", kwargs={"label": "edited"})

    assert sync_declared("default", at(12))["updated"] == 1

    row = Schedule.objects.get()
    assert (row.cron, row.kwargs, row.enabled, row.next_run_at) == ("5 0 * * *", {}, False, None)


@pytest.mark.django_db
def test_sync__a_changed_cron_in_code_recomputes_next_run_at(declare: Callable[..., Any]) -> None:
    entries = {"report": {"job": RECORD, "cron": "5 0 * * *"}}
    with jobs_settings(SCHEDULES=entries):
        sync_declared("default", T0)
    entries["report"]["cron"] = "0 12 * * *"
    with jobs_settings(SCHEDULES=entries):
        sync_declared("default", T0)

    assert Schedule.objects.get().next_run_at == at(12)


@pytest.mark.django_db
def test_sync__deletes_code_schedules_no_longer_declared_and_keeps_admin_ones() -> None:
    make("0 * * * *", name="from the admin")
    with jobs_settings(SCHEDULES={"report": {"job": RECORD, "cron": "5 0 * * *"}}):
        sync_declared("default", T0)

    with jobs_settings(SCHEDULES={}):
        assert sync_declared("default", T0)["deleted"] == 1

    assert list(Schedule.objects.values_list("name", flat=True)) == ["from the admin"]


def test_sync__deletes_a_code_schedule_an_old_worker_is_firing_once_it_has_fired(second_connection: Any) -> None:
    # A rolling deploy: the new code no longer declares "report" while a worker on the old code
    # fires it. The firing holds the schedule's row and adds a job naming it; the sync waits for
    # it, then deletes the schedule and leaves the job without one (SET_NULL), in one commit.
    with jobs_settings(SCHEDULES={"report": {"job": RECORD, "cron": "5 0 * * *"}}):
        sync_declared("default", T0)
    schedule = Schedule.objects.get(name="report")
    fired, release = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def fire() -> None:
        try:
            with transaction.atomic():
                Schedule.objects.select_for_update().get(pk=schedule.pk)
                outcome["job"] = Job.objects.create(name=RECORD, schedule=schedule)
                fired.set()
                release.wait(10)
        finally:
            connections.close_all()

    def sync() -> None:
        try:
            outcome["counts"] = sync_declared("default", T0)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            outcome["error"] = exc
        finally:
            connections.close_all()

    firing = threading.Thread(target=fire)
    firing.start()
    assert fired.wait(10)
    with jobs_settings(SCHEDULES={}):
        syncing = threading.Thread(target=sync)
        syncing.start()
        wait_lock_waiter(second_connection, "%django_jobs_schedule%", "the sync to wait on the firing's row")
        release.set()
        firing.join(10)
        syncing.join(10)

    assert "error" not in outcome, outcome.get("error")
    assert outcome["counts"]["deleted"] == 1
    assert not Schedule.objects.filter(pk=schedule.pk).exists()
    assert Job.objects.get(pk=outcome["job"].pk).schedule_id is None


@pytest.mark.django_db
def test_sync__takes_over_an_admin_schedule_of_the_same_name(caplog: Any) -> None:
    make("0 * * * *", name="report", enabled=False)

    with jobs_settings(SCHEDULES={"report": {"job": RECORD, "cron": "5 0 * * *"}}):
        sync_declared("default", T0)

    row = Schedule.objects.get()
    assert (row.source, row.cron, row.enabled) == ("code", "5 0 * * *", False)
    assert "event=schedule_adopted" in caplog.text


