"""db/series.py and the tally service's recording: each minute once, caught up, rolled up, pruned."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_jobs.db import series
from django_jobs.db.connection import WORKER_SESSION
from django_jobs.models import CounterMark, JobStatus, Sample
from django_jobs.services import ServiceContext
from django_jobs.services.prune import prune_samples
from django_jobs.services.tally import SETTLE, Tally, record_samples
from tests.support.factories import JobFactory, fill

# A whole hour, so tests can say which minute is which: the recording of T0's first minute runs at
# T0 + 1 minute + SETTLE.
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def minute(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def after(n: int) -> datetime:
    """The moment the minute ``n`` (from T0) is recorded: once it ended, plus SETTLE."""
    return minute(n + 1) + SETTLE


def start_at(moment: datetime) -> None:
    """Recording began at ``moment``: the minutes from it on are recorded next."""
    CounterMark.objects.update_or_create(key=series.MARK, defaults={"counted_until": moment})


def ran(at: datetime, seconds: float, *, status: str = "succeeded", queue: str = "default",
        name: str = "a", **fields: Any) -> None:
    JobFactory(status=status, queue=queue, name=name, started_at=at - timedelta(seconds=seconds),
               finished_at=at, **fields)


def rows(span: int = 60, **lookups: Any) -> dict[tuple[datetime, str, str], dict[str, Any]]:
    return {
        (s.bucket, s.queue, s.name): {
            "succeeded": s.succeeded, "stopped": s.stopped, "dead": s.dead,
            "p50": s.p50, "p95": s.p95, "depth": s.depth, "lag": s.lag,
        }
        for s in Sample.objects.filter(span=span, **lookups)
    }


@pytest.mark.django_db
def test_record__the_first_one_only_starts_recording() -> None:
    ran(minute(0) + timedelta(seconds=5), 1)

    done = record_samples("default", now=after(0))

    assert done.started
    assert Sample.objects.count() == 0
    assert CounterMark.objects.get(key=series.MARK).counted_until == minute(1)


@pytest.mark.django_db
def test_record__one_minute_by_name_by_queue_and_for_all() -> None:
    start_at(minute(0))
    for seconds in (1, 2, 3, 4):
        ran(minute(0) + timedelta(seconds=10), seconds, queue="emails", name="send")
    ran(minute(0) + timedelta(seconds=20), 10, status="dead", queue="emails", name="send")
    ran(minute(0) + timedelta(seconds=30), 5, status="stopped", queue="reports", name="build")
    ran(minute(1) + timedelta(seconds=1), 1, queue="emails", name="send")  # the next minute
    JobFactory(status=JobStatus.QUEUED, queue="emails", run_at=minute(0) - timedelta(seconds=40))
    JobFactory(status=JobStatus.QUEUED, queue="emails", run_at=minute(0))
    JobFactory(status=JobStatus.QUEUED, queue="emails", run_at=after(5))  # not due: not counted
    JobFactory(status=JobStatus.RETRYING, queue="idle", run_at=minute(1))

    done = record_samples("default", now=after(0))

    assert (done.since, done.until, done.minute_rows, done.hour_rows) == (minute(0), minute(1), 6, 0)
    got = rows()
    send = got[(minute(0), "emails", "send")]
    assert (send["succeeded"], send["dead"], send["stopped"]) == (4, 1, 0)
    assert send["p50"] == pytest.approx(3.0)  # of 1, 2, 3, 4, 10
    assert send["p95"] == pytest.approx(8.8)
    assert send["depth"] is None and send["lag"] is None  # depth and lag are per queue
    emails = got[(minute(0), "emails", "")]
    assert (emails["succeeded"], emails["dead"], emails["depth"]) == (4, 1, 2)
    assert emails["lag"] == pytest.approx((after(0) - minute(0)).total_seconds() + 40)
    idle = got[(minute(0), "idle", "")]
    assert (idle["succeeded"], idle["depth"]) == (0, 1)
    assert got[(minute(0), "reports", "")]["depth"] == 0  # seen, with nothing ready
    everything = got[(minute(0), "", "")]
    assert (everything["succeeded"], everything["stopped"], everything["dead"], everything["depth"]) == (4, 1, 1, 3)
    assert sorted(got) == sorted([
        (minute(0), "emails", "send"), (minute(0), "reports", "build"),
        (minute(0), "emails", ""), (minute(0), "reports", ""), (minute(0), "idle", ""),
        (minute(0), "", ""),
    ])


@pytest.mark.django_db
def test_record__a_minute_already_recorded_is_not_recorded_again() -> None:
    start_at(minute(0))
    ran(minute(0) + timedelta(seconds=10), 1)
    record_samples("default", now=after(0))

    again = record_samples("default", now=after(0) + timedelta(seconds=20))

    assert (again.until, again.minute_rows) == (None, 0)
    assert rows()[(minute(0), "", "")]["succeeded"] == 1


@pytest.mark.django_db
def test_record__a_quiet_minute_still_gets_its_all_queues_row() -> None:
    start_at(minute(0))

    record_samples("default", now=after(2))

    assert sorted(rows()) == [(minute(n), "", "") for n in range(3)]
    # Only the last minute was seen as it ended; the others' depth is unknown.
    assert [rows()[(minute(n), "", "")]["depth"] for n in range(3)] == [None, None, 0]


@pytest.mark.django_db
def test_record__catches_up_60_minutes_a_call_and_counts_each_minute_once() -> None:
    start_at(minute(0))
    for n in range(0, 150, 7):
        ran(minute(n) + timedelta(seconds=3), 1)
    now = after(149)

    calls = [record_samples("default", now=now) for _ in range(4)]

    assert [(c.since, c.until) for c in calls] == [
        (minute(0), minute(60)), (minute(60), minute(120)), (minute(120), minute(150)), (None, None)
    ]
    totals = rows(name="", queue="")
    assert sorted(totals) == [(minute(n), "", "") for n in range(150)]
    assert sum(r["succeeded"] for r in totals.values()) == len(range(0, 150, 7))
    # Two hours ended on the way; each rolled up once, from minutes recorded by several calls.
    hours = rows(span=3600, name="", queue="")
    assert sorted(hours) == [(minute(0), "", ""), (minute(60), "", "")]
    assert hours[(minute(0), "", "")]["succeeded"] == len(range(0, 60, 7))
    assert hours[(minute(60), "", "")]["succeeded"] == len(range(63, 120, 7))


@pytest.mark.django_db
def test_record__catches_up_no_further_back_than_the_minutes_are_kept() -> None:
    start_at(minute(0) - timedelta(days=10))

    with override_settings(DJANGO_JOBS={"CHARTS_MINUTE_RETENTION": 3600}):
        done = record_samples("default", now=after(0))

    assert done.since == minute(1) - timedelta(hours=1)
    assert done.until == minute(1)


@pytest.mark.django_db
def test_record__an_hour_rolls_up_counts_highest_depth_and_weighted_durations() -> None:
    start_at(minute(0))
    ran(minute(10) + timedelta(seconds=1), 1, queue="q", name="n")
    ran(minute(20) + timedelta(seconds=1), 4, queue="q", name="n")
    ran(minute(20) + timedelta(seconds=2), 4, queue="q", name="n")
    record_samples("default", now=after(30))
    JobFactory(status=JobStatus.QUEUED, queue="q", run_at=minute(50))
    record_samples("default", now=after(59))

    hour = rows(span=3600)
    n = hour[(minute(0), "q", "n")]
    assert n["succeeded"] == 3
    assert n["p50"] == pytest.approx((1 + 4 * 2) / 3)  # minute p50s, weighted by their jobs
    assert hour[(minute(0), "q", "")]["depth"] == 1
    assert hour[(minute(0), "", "")]["succeeded"] == 3


@pytest.mark.django_db(transaction=True)
def test_record__several_workers_at_once_record_each_minute_exactly_once() -> None:
    start_at(minute(0))
    for n in range(5):
        for _ in range(3):
            ran(minute(n) + timedelta(seconds=5), 1, queue="q", name="n")
    workers = 6
    barrier = threading.Barrier(workers)
    results: list[series.Recorded] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(record_samples("default", now=after(4)))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == []
    assert sorted(r.minute_rows for r in results) == [0] * (workers - 1) + [5 * 3]
    totals = rows(name="", queue="")
    assert [totals[(minute(n), "", "")]["succeeded"] for n in range(5)] == [3] * 5
    assert Sample.objects.filter(span=60, name="n").count() == 5


@pytest.mark.django_db
def test_tally_service__records_once_a_minute() -> None:
    service = Tally(ServiceContext(using="default", worker_id="w", clock=lambda: T0))
    start_at(minute(0))

    service.run(after(0))
    service.run(after(0) + timedelta(seconds=15))  # the same minute: no statement
    CounterMark.objects.filter(key=series.MARK).update(counted_until=minute(0))
    Sample.objects.all().delete()
    service.run(after(0) + timedelta(seconds=29))
    assert Sample.objects.count() == 0  # this worker already recorded up to minute(1)
    service.run(after(1))

    assert sorted(rows()) == [(minute(0), "", ""), (minute(1), "", "")]


@pytest.mark.django_db
def test_prune_samples__deletes_minutes_and_hours_past_their_retention() -> None:
    now = T0 + timedelta(days=100)
    for span, ages in ((60, (47, 49)), (3600, (24 * 89, 24 * 91))):
        for hours in ages:
            Sample.objects.create(span=span, bucket=now - timedelta(hours=hours))

    assert prune_samples("default", now=now) == {60: 1, 3600: 1}

    left = sorted((s.span, round((now - s.bucket).total_seconds() / 3600)) for s in Sample.objects.all())
    assert left == [(60, 47), (3600, 24 * 89)]


@pytest.mark.django_db
def test_record__at_200k_jobs_reads_the_minute_from_the_indexes_never_the_whole_table() -> None:
    fill(200_000)
    now = timezone.now()
    params = {
        "key": series.MARK, "target": series.floor_minute(now), "oldest": now - timedelta(days=2),
        "most": 60, "now": now,
    }

    with connection.cursor() as cursor:  # EXPLAIN without ANALYZE: plans, runs nothing
        cursor.execute("EXPLAIN " + series.RECORD, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "django_jobs_finished_idx" in plan and "django_jobs_ready_idx" in plan, plan
    assert f"Seq Scan on {series.TABLE}" not in plan, plan


@pytest.mark.django_db
def test_record__on_a_worker_session_the_same_minute_is_recorded() -> None:
    """A worker's connection prices sorts and sequential scans out (WORKER_SESSION); the tally
    service runs the statement there."""
    start_at(minute(0))
    ran(minute(0) + timedelta(seconds=10), 1, queue="q", name="n")
    ran(minute(0) + timedelta(seconds=20), 3, queue="q", name="n")
    with connection.cursor() as cursor:
        cursor.execute(WORKER_SESSION)
    try:
        done = record_samples("default", now=after(0))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ALL")

    assert done.minute_rows == 3
    assert rows()[(minute(0), "q", "n")]["p50"] == pytest.approx(2.0)
