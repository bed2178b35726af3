"""admin/paginator.py: the job lists never count the whole table."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from django_jobs.admin.paginator import EstimatedCountPaginator
from django_jobs.models import Job
from tests.support.admin import LIST, analyze, dead, text
from tests.support.factories import JobFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("only_our_schedules")]


def count_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]


def test_list__never_counts_the_whole_table(client: Client) -> None:
    JobFactory.create_batch(3)
    analyze()

    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST)

    assert response.status_code == 200
    assert "3 jobs" in text(response)
    assert "results" not in text(response)  # no "N results (Show all)" on an unfiltered list
    counts = count_queries(queries)
    assert counts, "expected a capped count"
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_list__beyond_the_exact_limit_the_count_is_the_planners_estimate(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 5)
    JobFactory.create_batch(40)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")

    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST)

    assert re.search(r"about 4\d jobs", text(response)), text(response)[-300:]
    assert response.context["cl"].paginator.estimated
    assert not count_queries(queries)  # the estimate alone: no row is counted


def test_list__a_filter_matching_few_rows_is_counted_exactly(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 5)
    JobFactory.create_batch(40)
    dead(), dead()

    response = client.get(LIST, {"status__exact": "dead"})

    assert "2 jobs" in text(response) and "about" not in text(response)
