"""db/stats.py at scale: none of the statements behind the overview, the metrics or the tally
scans the job table (EXPLAIN, never a stopwatch)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_jobs import stats
from django_jobs.db import stats as db_stats
from django_jobs.models import Job, JobStatus, Worker
from django_jobs.services import tally as counters
from tests.support.factories import JobFactory, fill

pytestmark = pytest.mark.django_db


# -- the cost at scale: EXPLAIN, never a stopwatch --------------------------------------------


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
        if sql.lstrip().upper().startswith(("SELECT", "WITH")) and db_stats.TABLE in sql:
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
    # Around the minutes the charts recorded: two range scans of the same index.
    around = plan(db_stats.FINISHED_AROUND_BY_QUEUE, {
        "since": now - stats.RECENT, "first": now - timedelta(minutes=59), "end": now - timedelta(minutes=1),
    })

    assert "django_jobs_ready_idx" in active and "django_jobs_running_idx" in active, active
    assert "django_jobs_finished_idx" in recent, recent
    assert around.count("django_jobs_finished_idx") == 2, around
    assert "Seq Scan" not in active + recent + around, active + recent + around


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


@pytest.mark.parametrize("query", ["", "?status__exact=succeeded", "?queue=default"])
def test_at_200k_jobs__no_statement_of_the_job_list_scans_the_table(
    big_table: None,
    admin_client: Client,
    query: str,
) -> None:
    # The queue and name filters' choices sample the ready jobs: through the ready rows' partial
    # indexes, not a scan of every finished row for the few ready ones.
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(reverse("admin:django_jobs_job_changelist") + query)
    assert response.status_code == 200

    assert_no_scan_of_the_job_table(explain_job_table_statements(captured))


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


@override_settings(DJANGO_JOBS={"QUEUES": {"emails": {"concurrency": 4, "rate": "100/m"}}})
def test_at_200k_jobs__the_limits_usage_reads_the_indexes_and_never_scans_the_table(
    big_table: None,
    admin_client: Client,
    limited_jobs: dict[str, Any],
) -> None:
    name = limited_jobs["sync_account"].name
    for i in range(50):
        JobFactory(name=name, concurrency_key=f"account:{i}", rate_key=f"tenant:{i % 5}")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {db_stats.TABLE}")

    with CaptureQueriesContext(connection) as captured:
        assert admin_client.get(reverse("admin:django_jobs_queueoverview_changelist")).status_code == 200
        assert admin_client.get(reverse("django_jobs:metrics")).status_code == 200

    plans = explain_job_table_statements(captured)
    assert_no_scan_of_the_job_table(plans)
    keyed = [text for sql, text in plans.items() if "concurrency_keys" in sql]
    assert keyed and all("django_jobs_keyed_idx" in text for text in keyed), plans
