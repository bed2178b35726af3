"""The admin's charts: the overview per queue, the job list of one name, a schedule's page; each
drawn from the recorded buckets only, with its period selector."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_jobs.db import series
from django_jobs.models import Sample, Schedule
from django_jobs.timeline import VIEWS

pytestmark = pytest.mark.django_db

OVERVIEW = "admin:django_jobs_queueoverview_changelist"
JOBS = "admin:django_jobs_job_changelist"


def recorded(minutes_ago: int, queue: str = "", name: str = "", span: int = 60, **values: int) -> None:
    """A bucket the tally service would have written ``minutes_ago`` (its all-queues row too)."""
    bucket = series.floor_minute(timezone.now()) - timedelta(minutes=minutes_ago)
    if span == 3600:
        bucket = bucket.replace(minute=0)
    Sample.objects.get_or_create(span=span, bucket=bucket, queue="", name="", defaults={"depth": 0})
    if queue:
        Sample.objects.create(span=span, bucket=bucket, queue=queue, name=name, **values)


def svgs(html: str) -> list[str]:
    return re.findall(r"<svg class=\"dj-chart-svg\".*?</svg>", html, re.S)


def lines(svg: str) -> int:
    return svg.count("<polyline") + svg.count("<circle")


def test_overview__charts_each_queue_finished_depth_and_lag(client: Client) -> None:
    for ago in (5, 4, 3):
        recorded(ago, "emails", succeeded=10, dead=1)
        recorded(ago, "emails", "shop.send", succeeded=10, dead=1, p50=1, p95=2)
        recorded(ago, "reports", depth=7, lag=30)

    html = client.get(reverse(OVERVIEW)).content.decode()

    titles = re.findall(r'<title id="[^"]+">([^<]*)</title>', html)
    assert titles == [
        "emails: jobs finished per minute", "emails: jobs ready to run",
        "emails: wait of the oldest ready job",
        "reports: jobs finished per minute", "reports: jobs ready to run",
        "reports: wait of the oldest ready job",
    ]
    finished = svgs(html)[0]
    assert lines(finished) == 3  # succeeded, stopped, dead: each a line over the three minutes
    assert "Succeeded: 30 in all, at most 10" in finished
    assert "Ready: from 7 to 7" in svgs(html)[4]
    assert "Ready: from 0 to 0" in svgs(html)[1]  # seen with nothing ready
    assert "<details><summary>Numbers</summary>" in html


def test_overview__says_so_before_anything_was_recorded(client: Client) -> None:
    html = client.get(reverse(OVERVIEW)).content.decode()

    assert "Nothing recorded yet. Workers record the charts once a minute" in html
    assert svgs(html) == []


def test_overview__the_selector_picks_the_period_and_keeps_the_other_parameters(client: Client) -> None:
    recorded(60 * 2, "emails", span=3600, succeeded=4)
    recorded(60 * 30, "emails", span=3600, succeeded=2)  # 30 hours ago: in the week only

    week = client.get(reverse(OVERVIEW), {"range": "week", "refresh": "30"}).content.decode()
    day = client.get(reverse(OVERVIEW), {"range": "day"}).content.decode()

    assert "emails: jobs finished per hour" in week
    (current,) = re.findall(r'<a href="\?([^"]*)" aria-current="true" class="dj-current">', week)
    assert sorted(current.split("&amp;")) == ["range=week", "refresh=30"]
    assert "emails: jobs finished per 10 minutes" not in day  # no minute buckets recorded
    assert 'aria-current="true" class="dj-current">Last day' in day


def test_overview__reads_the_buckets_not_the_job_table_for_its_charts(client: Client) -> None:
    recorded(1, "emails", succeeded=1)
    with CaptureQueriesContext(connection) as captured:
        client.get(reverse(OVERVIEW), {"range": "day"})

    reads = [q["sql"] for q in captured.captured_queries if series.SAMPLE_TABLE in q["sql"]]
    # One statement for the charts; the other reads the last hour's minutes for the queues' table.
    assert len([sql for sql in reads if "date_bin(" in sql]) == 1, reads
    assert len(reads) == 2, reads
    assert not [sql for sql in reads if series.TABLE in sql], reads


def test_job_list__filtered_to_a_name_charts_its_runs_and_durations(client: Client) -> None:
    recorded(4, "emails", "shop.send", succeeded=3, dead=2, p50=1, p95=4)

    html = client.get(reverse(JOBS), {"name": "shop.send", "range": "hour"}).content.decode()
    unfiltered = client.get(reverse(JOBS)).content.decode()

    assert re.findall(r'<title id="[^"]+">([^<]*)</title>', html) == [
        "shop.send: runs per minute", "shop.send: how long a run took",
    ]
    assert "Dead (failed): 2 in all" in html
    assert "Median (p50): from 1 s to 1 s" in html
    assert "?e=1" not in html  # range isn't taken for an unknown filter
    assert "dj-charts" not in unfiltered


def test_schedule_page__charts_its_jobs_runs_over_the_day_and_the_week(client: Client) -> None:
    schedule = Schedule.objects.create(name="nightly", job_name="tests.testapp.jobs.record", cron="0 3 * * *")
    recorded(3, "default", "tests.testapp.jobs.record", succeeded=1, p50=2, p95=2)

    html = client.get(reverse("admin:django_jobs_schedule_change", args=[schedule.pk])).content.decode()

    titles = re.findall(r'<title id="([^"]+)">([^<]*)</title>', html)
    assert titles == [
        ("dj-chart-day-runs-title", "tests.testapp.jobs.record: runs per 10 minutes"),
        ("dj-chart-day-durations-title", "tests.testapp.jobs.record: how long a run took"),
        ("dj-chart-week-runs-title", "tests.testapp.jobs.record: runs per hour"),
        ("dj-chart-week-durations-title", "tests.testapp.jobs.record: how long a run took"),
    ]
    assert VIEWS["day"].label in html and VIEWS["week"].label in html
