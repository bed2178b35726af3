"""stats.py and db/stats.py: the overview's and the metrics' numbers, and that none of their
statements scans the job table."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_jobs import stats
from django_jobs.db import stats as db_stats
from django_jobs.models import Job, JobStatus, Pause, Worker
from django_jobs.services import tally as counters
from tests.support.factories import JobFactory

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
    fill(20_000)
    monkeypatch.setattr(stats, "EXACT_COUNT_MAX_ROWS", 0)

    stored = stats.stored_finished("default")

    assert not stored.exact
    exact = dict(Job.objects.finished().values_list("status").annotate(n=Count("id")).order_by())
    for status, count in exact.items():
        # ANALYZE samples the whole of a table this small: the estimate is close.
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


# -- the cost at scale: EXPLAIN, never a stopwatch --------------------------------------------


def fill(total: int, *, now: str = "now()") -> None:
    """Write ``total`` jobs shaped like a busy production table: nearly all finished, spread
    over a week of retention, a thin layer of waiting and running ones on top."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {db_stats.TABLE} (name, args, kwargs, queue, priority, status, "
            "attempts, max_attempts, run_at, created_at, started_at, finished_at, worker_id, "
            "history, last_error) "
            "SELECT 'shop.job' || (i %% 20), '[]', '{}', "
            "(ARRAY['default', 'emails', 'reports'])[1 + i %% 3], 0, s.status, 1, 3, r.at, r.at, "
            "CASE WHEN s.status IN ('succeeded', 'dead', 'stopped', 'running') THEN r.at END, "
            "CASE WHEN s.status IN ('succeeded', 'dead', 'stopped') THEN r.at END, "
            "CASE WHEN s.status = 'running' THEN 'host:' || (i %% 4) ELSE '' END, '[]', '' "
            "FROM generate_series(1, %s) AS i, "
            "LATERAL (SELECT CASE WHEN i %% 1000 < 5 THEN 'queued' "
            "WHEN i %% 1000 < 7 THEN 'retrying' "
            "WHEN i %% 1000 < 8 THEN 'running' WHEN i %% 1000 < 20 THEN 'dead' "
            "WHEN i %% 1000 < 22 THEN 'stopped' ELSE 'succeeded' END AS status) AS s, "
            f"LATERAL (SELECT {now} - (i %% 10080) * interval '1 minute' AS at) AS r",
            [total],
        )
        cursor.execute(f"ANALYZE {db_stats.TABLE}")


def plan(sql: str, params: object = None) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def big_table() -> None:
    """200,000 jobs in this test's transaction, analyzed so the planner knows their shape, and
    a worker running a few of them."""
    fill(200_000)
    running = list(Job.objects.filter(status=JobStatus.RUNNING).values_list("id", flat=True)[:4])
    Worker.objects.create(
        worker_id="host:0", hostname="host", pid=1, concurrency=4, running=running
    )


def explain_job_table_statements(captured: CaptureQueriesContext) -> dict[str, str]:
    """EXPLAIN every captured SELECT that reads the job table; return the plans by statement."""
    plans = {}
    for query in captured.captured_queries:
        sql = query["sql"]
        if sql.lstrip().upper().startswith("SELECT") and db_stats.TABLE in sql:
            plans[sql] = plan(sql)
    return plans


def assert_no_scan_of_the_job_table(plans: dict[str, str]) -> None:
    assert plans, "no statement read the job table"
    for sql, text in plans.items():
        assert f"Seq Scan on {db_stats.TABLE}" not in text, f"{sql}\n{text}"


def test_at_200k_jobs__the_overview_uses_the_indexes_and_never_scans_the_table(
    big_table: None,
) -> None:
    now = timezone.now()
    active = plan(db_stats.ACTIVE_BY_QUEUE, {"now": now})
    recent = plan(db_stats.FINISHED_SINCE_BY_QUEUE, {"since": now - stats.RECENT})

    assert "django_jobs_ready_idx" in active and "django_jobs_running_idx" in active, active
    assert "django_jobs_finished_idx" in recent, recent
    assert "Seq Scan" not in active + recent, active + recent


def test_at_200k_jobs__no_statement_of_the_overview_page_scans_the_table(
    big_table: None,
    admin_client: Client,
) -> None:
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(reverse("admin:django_jobs_queueoverview_changelist"))
    assert response.status_code == 200

    assert_no_scan_of_the_job_table(explain_job_table_statements(captured))
    # Succeeded and stopped jobs were estimated (97.8% of 200,000 succeeded); the dead ones, 1.2%,
    # counted on their own index.
    html = response.content.decode()
    assert re.search(r"≈ 19\d,000 succeeded", html) or re.search(r"≈ 200,000 succeeded", html), html
    assert "· 2,400 dead" in html, html


def test_at_200k_jobs__no_statement_of_the_metrics_or_the_tally_scans_the_table(
    big_table: None,
    admin_client: Client,
) -> None:
    now = timezone.now()
    counters.tally("default", now=now - timedelta(minutes=10))  # starts counting
    with CaptureQueriesContext(connection) as captured:
        assert admin_client.get(reverse("django_jobs:metrics")).status_code == 200
        assert counters.tally("default", now=now) > 0

    plans = explain_job_table_statements(captured)
    assert_no_scan_of_the_job_table(plans)
    assert any("django_jobs_finished_idx" in text for text in plans.values()), plans
