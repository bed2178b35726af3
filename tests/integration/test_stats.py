"""stats.py: the overview's and the metrics' numbers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone

from django_jobs import stats
from django_jobs.db import series
from django_jobs.models import CounterMark, Job, JobStatus, Limit, Pause, Sample, Start, Worker
from django_jobs.services.tally import SETTLE
from tests.support.factories import JobFactory, fill

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def stats_by_queue(**kwargs: Any) -> dict[str, stats.QueueStats]:
    return {s.queue: s for s in stats.queue_stats("default", now=NOW, **kwargs)}


def test_queue_stats__counts_active_jobs_by_queue_and_status() -> None:
    JobFactory.create_batch(2, queue="emails", run_at=NOW - timedelta(minutes=5))
    JobFactory(queue="emails", run_at=NOW + timedelta(hours=1))  # delayed: queued, not ready
    JobFactory(queue="emails", status=JobStatus.RETRYING, run_at=NOW - timedelta(seconds=30))
    JobFactory(queue="emails", status=JobStatus.RUNNING, worker_id="w1")
    JobFactory(queue="reports", status=JobStatus.RETRYING, run_at=NOW + timedelta(minutes=1))

    by_queue = stats_by_queue()

    emails = by_queue["emails"]
    assert (emails.queued, emails.retrying, emails.running, emails.ready) == (3, 1, 1, 3)
    reports = by_queue["reports"]
    assert (reports.queued, reports.retrying, reports.running, reports.ready) == (0, 1, 0, 0)


def test_queue_stats__lag_is_the_age_of_the_oldest_ready_job() -> None:
    JobFactory(queue="emails", run_at=NOW - timedelta(minutes=7))
    JobFactory(queue="emails", status=JobStatus.RETRYING, run_at=NOW - timedelta(minutes=9))
    JobFactory(queue="emails", run_at=NOW + timedelta(hours=2))  # not ready: no lag from it
    JobFactory(queue="idle", run_at=NOW + timedelta(hours=2))

    by_queue = stats_by_queue()

    assert by_queue["emails"].lag(NOW) == timedelta(minutes=9)
    assert by_queue["idle"].lag(NOW) == timedelta(0)
    assert by_queue["idle"].oldest_ready_at is None


def test_queue_stats__counts_the_last_hours_outcomes_only() -> None:
    for status, minutes_ago in [
        ("succeeded", 5),
        ("succeeded", 59),
        ("dead", 10),
        ("stopped", 1),
        ("succeeded", 61),
        ("dead", 120),
    ]:
        JobFactory(queue="emails", status=status, finished_at=NOW - timedelta(minutes=minutes_ago))

    emails = stats_by_queue()["emails"]

    assert emails.recent == {"succeeded": 2, "dead": 1, "stopped": 1}
    assert (emails.recent_finished, emails.recent_failed) == (4, 1)


def _record_the_last_hour(now: Any) -> Any:
    """Record the charts' minutes of the hour before ``now``, as the workers' tally would have;
    return the first whole minute of that hour."""
    first = (now - stats.RECENT).replace(second=0, microsecond=0) + timedelta(minutes=1)
    CounterMark.objects.create(key=series.MARK, counted_until=first)
    recorded = series.record("default", now=now, settle=SETTLE, keep=timedelta(days=1))
    assert recorded.until == (now - SETTLE).replace(second=0, microsecond=0)
    return first


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the charts are recorded on PostgreSQL only")
def test_queue_stats__reads_the_recorded_minutes_from_the_charts_and_counts_only_the_rest() -> None:
    now = NOW.replace(second=40)
    since = now - stats.RECENT
    kept = JobFactory(queue="emails", status="succeeded", finished_at=now - timedelta(minutes=5))
    for status, ago in [("succeeded", timedelta(minutes=59)), ("dead", timedelta(minutes=10)),
                        ("succeeded", timedelta(minutes=61))]:
        JobFactory(queue="emails", status=status, finished_at=now - ago)
    first = _record_the_last_hour(now)
    # After the recording: a job gone from the table (pruned) is still counted from the minute
    # rows; jobs before the first whole minute and after the last recorded one from the table.
    kept.delete()
    JobFactory(queue="emails", status="stopped", finished_at=now - timedelta(seconds=10))
    JobFactory(queue="emails", status="succeeded", finished_at=since + timedelta(seconds=5))
    assert since + timedelta(seconds=5) < first

    emails = stats_by_queue_at(now)["emails"]

    assert emails.recent == {"succeeded": 3, "dead": 1, "stopped": 1}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the charts are recorded on PostgreSQL only")
def test_queue_stats__counts_the_table_from_a_minute_the_charts_did_not_record() -> None:
    now = NOW.replace(second=40)
    JobFactory(queue="emails", status="succeeded", finished_at=now - timedelta(minutes=40))
    gone = JobFactory(queue="emails", status="succeeded", finished_at=now - timedelta(minutes=5))
    _record_the_last_hour(now)
    gone.delete()
    # Nothing recorded 20 minutes ago (no worker ran): from then on, the table is the truth.
    gap = (now - timedelta(minutes=20)).replace(second=0)
    Sample.objects.filter(span=series.MINUTE, bucket=gap, queue="", name="").delete()

    assert stats_by_queue_at(now)["emails"].recent == {"succeeded": 1}


def stats_by_queue_at(now: Any) -> dict[str, stats.QueueStats]:
    return {s.queue: s for s in stats.queue_stats("default", now=now)}


def test_queue_stats__lists_known_and_paused_queues_even_when_empty() -> None:
    Pause.objects.pause_queue("quiet")

    by_queue = stats_by_queue(extra_queues=["from-a-worker"])

    assert {"default", "quiet", "from-a-worker"} <= set(by_queue)
    assert by_queue["quiet"].paused and not by_queue["default"].paused
    assert by_queue["quiet"].queued == 0


def test_stored_finished__counts_exactly_while_the_table_is_small() -> None:
    JobFactory.create_batch(3, status=JobStatus.SUCCEEDED, finished_at=NOW)
    JobFactory(status=JobStatus.DEAD, finished_at=NOW)
    JobFactory()  # queued: not finished

    stored = stats.stored_finished("default")

    assert stored.exact
    assert stored.counts == {"succeeded": 3, "stopped": 0, "dead": 1}


def test_stored_finished__estimates_from_the_planner_once_the_table_is_large(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Rows other tests wrote and rolled back leave dead pages behind. Past 30,000 pages (300 times
    # the default statistics target) ANALYZE reads a sample of them and its estimate wanders, so
    # this test widens the target (rolled back with the test) to make fill()'s ANALYZE read every
    # page.
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {Job._meta.db_table} ALTER COLUMN status SET STATISTICS 10000")
    fill(20_000)
    monkeypatch.setattr(stats, "EXACT_COUNT_MAX_ROWS", 0)

    stored = stats.stored_finished("default")

    assert not stored.exact
    exact = dict(Job.objects.finished().values_list("status").annotate(n=Count("id")).order_by())
    for status, count in exact.items():
        # ANALYZE read every row: the estimate is close.
        assert abs(stored.counts[status] - count) <= max(50, count // 10), (status, stored.counts)
    assert all(n == round(n, -(len(str(n)) - 2)) for n in stored.counts.values() if n >= 100)


def test_stored_finished__counts_dead_jobs_exactly_up_to_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fill(20_000)  # 240 dead
    monkeypatch.setattr(stats, "EXACT_COUNT_MAX_ROWS", 1_000)

    stored = stats.stored_finished("default")

    assert stored.estimated == {"succeeded", "stopped"}
    assert stored.counts["dead"] == 240
    monkeypatch.setattr(stats, "EXACT_COUNT_MAX_ROWS", 240)
    assert stats.stored_finished("default").estimated == {"succeeded", "stopped", "dead"}


def test_worker_stats__heartbeat_age_and_the_jobs_each_worker_runs() -> None:
    job = JobFactory(
        status=JobStatus.RUNNING,
        worker_id="host:1",
        name="tests.testapp.jobs.record",
        started_at=NOW - timedelta(seconds=40),
    )
    Worker.objects.create(
        worker_id="host:1",
        hostname="host",
        pid=1,
        concurrency=2,
        last_heartbeat=NOW - timedelta(seconds=3),
        running=[job.pk, 999_999],
    )
    Worker.objects.create(
        worker_id="host:2",
        hostname="host",
        pid=2,
        concurrency=1,
        last_heartbeat=NOW - timedelta(minutes=5),
        running=[],
    )

    first, second = stats.worker_stats("default", now=NOW)

    assert first.heartbeat_age == timedelta(seconds=3) and not first.silent
    assert [r["id"] for r in first.running] == [job.pk, 999_999]
    assert first.running[0]["name"] == "tests.testapp.jobs.record"
    assert first.running[1]["name"] is None  # finished since the heartbeat: no row any more
    assert second.silent


# -- flow control: each limit's usage ---------------------------------------------------------


def usage_by_target() -> dict[tuple[str, str], stats.LimitUsage]:
    return {(u.scope, u.target): u for u in stats.limit_usage("default", now=NOW)}


def started(key: str, *seconds_ago: float) -> None:
    Start.objects.bulk_create(Start(key=key, started_at=NOW - timedelta(seconds=s)) for s in seconds_ago)


@pytest.mark.usefixtures("no_code_limits")
def test_limit_usage__is_empty_while_nothing_is_limited() -> None:
    assert stats.limit_usage("default", now=NOW) == []


@override_settings(DJANGO_JOBS={"QUEUES": {"partner-api": {"concurrency": 4, "rate": "100/m"}}})
def test_limit_usage__counts_running_jobs_and_the_rates_window_for_a_queue_and_a_name(
    limited_jobs: dict[str, Any],
) -> None:
    partner = limited_jobs["call_partner"].name
    JobFactory.create_batch(2, name=partner, queue="partner-api", status=JobStatus.RUNNING,
                            concurrency_key=partner)
    JobFactory(queue="partner-api", status=JobStatus.RUNNING)
    JobFactory(queue="default", status=JobStatus.RUNNING)
    started("queue:partner-api", 1, 30, 59, 61, 600)  # three in the last minute
    started(limited_jobs["send_digest"].name, 5, 3600)

    usage = usage_by_target()

    queue = usage[("queue", "partner-api")]
    assert (queue.concurrency, queue.concurrency_source, queue.running) == (4, "settings", 3)
    assert (str(queue.rate), queue.rate_source, queue.rate_starts) == ("100/m", "settings", 3)
    name = usage[("name", partner)]
    assert (name.concurrency, name.concurrency_source, name.running) == (2, "code", 2)
    assert name.rate is None and name.rate_starts is None and name.keys == {}
    digest = usage[("name", limited_jobs["send_digest"].name)]
    assert (str(digest.rate), digest.rate_starts, digest.concurrency) == ("30/m", 1, None)
    # A sequence alone is no limit: it has no row.
    assert ("name", limited_jobs["bill_customer"].name) not in usage


def test_limit_usage__an_operators_limit_replaces_codes_and_says_so(limited_jobs: dict[str, Any]) -> None:
    partner = limited_jobs["call_partner"].name
    Limit.objects.set("name", partner, concurrency=1, note="partner asked")
    Limit.objects.set("queue", "reports", rate="10/s")
    # An operator limit on a job name without one in code.
    Limit.objects.set("name", "tests.testapp.jobs.record", concurrency=3)
    JobFactory(status=JobStatus.RUNNING)

    usage = usage_by_target()

    assert (usage[("name", partner)].concurrency, usage[("name", partner)].concurrency_source) == (1, "operator")
    reports = usage[("queue", "reports")]
    assert (str(reports.rate), reports.rate_source, reports.concurrency) == ("10/s", "operator", None)
    record = usage[("name", "tests.testapp.jobs.record")]
    assert (record.concurrency, record.concurrency_source, record.running) == (3, "operator", 1)


def test_limit_usage__per_key_counts_the_keys_with_jobs_waiting_and_those_at_their_limit(
    limited_jobs: dict[str, Any],
) -> None:
    name = limited_jobs["sync_account"].name

    def sync(account: int, tenant: int, **fields: Any) -> Job:
        return JobFactory(name=name, kwargs={"account_id": account, "tenant_id": tenant},
                          concurrency_key=f"account:{account}", rate_key=f"tenant:{tenant}", **fields)

    sync(1, 1, status=JobStatus.RUNNING)
    sync(1, 1, run_at=NOW - timedelta(seconds=5))
    sync(1, 1, status=JobStatus.RETRYING, run_at=NOW - timedelta(seconds=1))
    sync(2, 1, run_at=NOW - timedelta(seconds=5))
    sync(3, 2, run_at=NOW - timedelta(seconds=5), sequence_key="anything")  # in a sequence too
    sync(9, 3, run_at=NOW + timedelta(hours=1))  # not due: no key of it waits yet
    started("tenant:1", 0.1, 0.2, 0.3, 0.4, 0.9)  # five in the last second: at the rate
    started("tenant:2", 0.5, 2, 3, 4, 5)  # one in the last second

    usage = usage_by_target()[("name", name)]

    assert (usage.concurrency, usage.concurrency_per_key) == (1, "account:{account_id}")
    assert (str(usage.rate), usage.rate_per_key) == ("5/s", "tenant:{tenant_id}")
    assert usage.running == 1
    assert usage.rate_starts is None  # each key has its own window
    assert usage.keys == {
        "concurrency": stats.KeyUsage(waiting=3, at_limit=1),  # account:1 runs one of one
        "rate": stats.KeyUsage(waiting=2, at_limit=1),  # tenant:1 started five in a second
    }
