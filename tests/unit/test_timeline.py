"""timeline.py's shaping: rows of buckets into each queue's and one name's series; no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django_jobs import timeline

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timeline.VIEWS["hour"]


def at(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def row(n: int, queue: str = "", name: str = "", ok: int = 0, stopped: int = 0, dead: int = 0,
        p50: float | None = None, p95: float | None = None, depth: int | None = None,
        lag: float | None = None) -> tuple[Any, ...]:
    return (at(n), queue, name, ok, stopped, dead, p50, p95, depth, lag)


def values(chart: Any, line: int = 0) -> tuple[float | None, ...]:
    return chart.lines[line].values


def test_view_times__evenly_spaced_up_to_the_last_step_recorded_in_full() -> None:
    now = T0 + timedelta(hours=1, seconds=42)  # 13:00:42

    hour = timeline.VIEWS["hour"].times(now)
    day = timeline.VIEWS["day"].times(now)
    week = timeline.VIEWS["week"].times(now)

    # 12:58 ended at 12:59, recorded by 13:00:30; 12:59 isn't recorded yet.
    assert (len(hour), hour[0], hour[-1]) == (60, at(-1), at(58))
    assert (len(day), day[-1], day[-1] - day[-2]) == (144, at(40), timedelta(minutes=10))
    assert (len(week), week[-1]) == (168, T0 - timedelta(hours=1))
    assert timeline.VIEWS["hour"].times(now + timedelta(seconds=60))[-1] == at(59)


def test_view_named__falls_back_to_the_last_hour() -> None:
    assert timeline.view_named("week").key == "week"
    assert timeline.view_named("nonsense").key == timeline.view_named(None).key == "hour"


def test_shape_queues__not_recorded_is_none_recorded_without_the_queue_is_zero() -> None:
    times = (at(0), at(1), at(2))
    rows = [
        row(0, depth=None),  # recorded (catch-up: depth not seen)
        row(0, "emails", ok=3, dead=1),
        row(2, depth=5, lag=7.0),  # recorded and seen; emails had nothing
        row(2, "reports", depth=5, lag=7.0),
    ]  # at(1): nothing recorded at all

    emails, reports = timeline.shape_queues(rows, times, HOUR)

    assert (emails.queue, reports.queue) == ("emails", "reports")
    assert values(emails.throughput, 0) == (3.0, None, 0.0)  # succeeded
    assert values(emails.throughput, 2) == (1.0, None, 0.0)  # dead
    assert values(emails.depth) == (None, None, 0.0)
    assert values(reports.depth) == (None, None, 5.0)
    assert values(reports.lag) == (None, None, 7.0)
    assert reports.lag.unit == "seconds"
    assert [line.key for line in emails.throughput.lines] == ["succeeded", "stopped", "dead"]
    assert emails.throughput.title == "emails: jobs finished per minute"


def test_shape_queues__nothing_recorded_gives_no_queue() -> None:
    assert timeline.shape_queues([], (at(0),), HOUR) == []


def test_shape_name__sums_queues_and_weights_durations_by_jobs() -> None:
    times = (at(0), at(1), at(2))
    rows = [
        row(0), row(1), row(2),
        row(0, "a", "send", ok=1, p50=1.0, p95=2.0),
        row(0, "b", "send", ok=2, dead=1, p50=4.0, p95=8.0),
        row(0, "b", "other", ok=9, p50=100.0, p95=100.0),  # another name: ignored
    ]

    runs, took = timeline.shape_name(rows, times, HOUR, "send")

    assert values(runs, 0) == (3.0, 0.0, 0.0)
    assert values(runs, 2) == (1.0, 0.0, 0.0)
    assert values(took, 0) == ((1.0 * 1 + 4.0 * 3) / 4, None, None)
    assert values(took, 1) == ((2.0 * 1 + 8.0 * 3) / 4, None, None)
    assert runs.id == "dj-chart-name-runs" and took.unit == "seconds"


def test_shape_name__times_are_shown_in_the_current_time_zone(settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Paris"

    runs, _ = timeline.shape_name([], (at(0),), HOUR, "send")

    assert runs.times[0].hour == 13 and runs.times[0] == at(0)
    assert runs.empty
