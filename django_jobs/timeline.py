"""The admin's charts, read from the ``Sample`` buckets the tally service records (db/series.py).

Only that small table is read, by a range of bucket times: drawing a chart never touches the job
table. A ``View`` is what the page's selector offers: the last hour and the last day come from
the minute buckets (the day grouped ten minutes to a point), the last week from the hourly ones.
The ``shape_*`` functions turn rows into ``charts.Chart`` values and read no database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from .charts import Chart, Line
from .db import series

OUTCOMES = ("succeeded", "stopped", "dead")
OUTCOME_LABELS = {"succeeded": "Succeeded", "stopped": "Stopped", "dead": "Dead (failed)"}
# Where each value is in db/series.read()'s rows.
_AT, _QUEUE, _NAME, _SUCCEEDED, _STOPPED, _DEAD, _P50, _P95, _DEPTH, _LAG = range(10)


#: How long after a minute ends workers have recorded it: SETTLE (30 s) plus a tally interval
#: (15 s), with room to spare.
RECORDED_AFTER = timedelta(seconds=90)


@dataclass(frozen=True)
class View:
    """A period the charts can show: how far back, from which buckets, how many seconds a point."""

    key: str
    label: str
    span: int
    step: int
    length: timedelta
    clock: str

    @property
    def per(self) -> str:
        """What one point counts, in words: "minute", "10 minutes", "hour"."""
        return {60: "minute", 3600: "hour"}.get(self.step, f"{self.step // 60} minutes")

    def times(self, now: datetime) -> tuple[datetime, ...]:
        """The points' times (UTC): the last one is the last step that ended ``RECORDED_AFTER``
        before ``now``, so the newest point is never a step half recorded (which would read as a
        drop in throughput)."""
        epoch = int((now - RECORDED_AFTER).timestamp()) - self.step
        last = datetime.fromtimestamp(epoch - epoch % self.step, tz=UTC)
        count = int(self.length.total_seconds() // self.step)
        return tuple(last - timedelta(seconds=self.step * (count - 1 - i)) for i in range(count))


VIEWS = {
    v.key: v
    for v in (
        View("hour", "Last hour", series.MINUTE, 60, timedelta(hours=1), "%H:%M"),
        View("day", "Last day", series.MINUTE, 600, timedelta(days=1), "%H:%M"),
        View("week", "Last week", series.HOUR, 3600, timedelta(days=7), "%a %H:%M"),
    )
}
DEFAULT_VIEW = "hour"


def view_named(key: str | None) -> View:
    """The view a query parameter names (the default one for anything else)."""
    return VIEWS.get(key or "", VIEWS[DEFAULT_VIEW])


@dataclass(frozen=True)
class QueueCharts:
    """One queue's charts: jobs finished by outcome, ready jobs, the oldest one's wait."""

    queue: str
    throughput: Chart
    depth: Chart
    lag: Chart

    @property
    def charts(self) -> tuple[Chart, Chart, Chart]:
        return self.throughput, self.depth, self.lag


def _local(times: Sequence[datetime]) -> tuple[datetime, ...]:
    return tuple(timezone.localtime(t) for t in times)


def _recorded(rows: Iterable[Sequence[Any]]) -> tuple[set[datetime], set[datetime]]:
    """The points some bucket was recorded for, and those whose depth was seen (all-queues rows)."""
    recorded, seen = set(), set()
    for row in rows:
        if row[_QUEUE] == "" and row[_NAME] == "":
            recorded.add(row[_AT])
            if row[_DEPTH] is not None:
                seen.add(row[_AT])
    return recorded, seen


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def shape_queues(rows: Sequence[Sequence[Any]], times: Sequence[datetime], view: View) -> list[QueueCharts]:
    """Per queue, its three charts over ``times`` from read()'s rows (queues' and all-queues').

    A point with no bucket recorded is None (the line breaks: no worker recorded it); a queue
    missing from a recorded point had nothing finished (0), and nothing ready if its depth was
    seen there.
    """
    recorded, seen = _recorded(rows)
    by_queue: dict[str, dict[datetime, Sequence[Any]]] = defaultdict(dict)
    for row in rows:
        if row[_QUEUE] and not row[_NAME]:
            by_queue[row[_QUEUE]][row[_AT]] = row
    local = _local(times)
    result = []
    for index, queue in enumerate(sorted(by_queue)):
        points = by_queue[queue]

        def counts(column: int, points: dict[datetime, Sequence[Any]] = points) -> tuple[float | None, ...]:
            return tuple(
                float(points[t][column]) if t in points else (0.0 if t in recorded else None)
                for t in times
            )

        def watched(column: int, points: dict[datetime, Sequence[Any]] = points) -> tuple[float | None, ...]:
            return tuple(
                _number(points[t][column]) if t in points and points[t][column] is not None
                else (0.0 if t in seen else None)
                for t in times
            )

        slug = f"dj-chart-q{index}"
        result.append(QueueCharts(
            queue,
            Chart(
                f"{slug}-finished", f"{queue}: jobs finished per {view.per}", local,
                tuple(Line(o, OUTCOME_LABELS[o], counts(_SUCCEEDED + i)) for i, o in enumerate(OUTCOMES)),
                clock=view.clock,
            ),
            Chart(f"{slug}-depth", f"{queue}: jobs ready to run", local,
                  (Line("depth", "Ready", watched(_DEPTH)),), clock=view.clock),
            Chart(f"{slug}-lag", f"{queue}: wait of the oldest ready job", local,
                  (Line("lag", "Oldest ready", watched(_LAG)),), unit="seconds", clock=view.clock),
        ))
    return result


def shape_name(
    rows: Sequence[Sequence[Any]], times: Sequence[datetime], view: View, name: str,
    slug: str = "dj-chart-name",
) -> tuple[Chart, Chart]:
    """One job name's runs by outcome and its durations over ``times``, summed over its queues
    (``slug`` starts the charts' element ids)."""
    recorded, _ = _recorded(rows)
    totals: dict[datetime, list[float]] = {}
    for row in rows:
        if row[_NAME] != name:
            continue
        # Sum the queues' counts; their durations weighted by their jobs.
        jobs = float(row[_SUCCEEDED] + row[_STOPPED] + row[_DEAD])
        point = totals.setdefault(row[_AT], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        for i in range(3):
            point[i] += float(row[_SUCCEEDED + i])
        if row[_P50] is not None:
            point[3] += float(row[_P50]) * jobs
            point[4] += float(row[_P95]) * jobs
            point[5] += jobs
    local = _local(times)

    def counts(i: int) -> tuple[float | None, ...]:
        return tuple(totals[t][i] if t in totals else (0.0 if t in recorded else None) for t in times)

    def durations(i: int) -> tuple[float | None, ...]:
        return tuple(totals[t][i] / totals[t][5] if t in totals and totals[t][5] else None for t in times)

    runs = Chart(
        f"{slug}-runs", f"{name}: runs per {view.per}", local,
        tuple(Line(o, OUTCOME_LABELS[o], counts(i)) for i, o in enumerate(OUTCOMES)), clock=view.clock,
    )
    took = Chart(
        f"{slug}-durations", f"{name}: how long a run took", local,
        (Line("p50", "Median (p50)", durations(3)), Line("p95", "p95", durations(4))),
        unit="seconds", clock=view.clock,
    )
    return runs, took


def _rows(using: str, view: View, now: datetime, name: str = "") -> tuple[list[tuple[Any, ...]], tuple[datetime, ...]]:
    times = view.times(now)
    rows = series.read(
        using, span=view.span, step=view.step, since=times[0],
        until=times[-1] + timedelta(seconds=view.step), name=name,
    )
    return rows, times


def queue_charts(using: str, view: View, *, now: datetime) -> list[QueueCharts]:
    """Every queue's charts over ``view`` ending at ``now``."""
    rows, times = _rows(using, view, now)
    return shape_queues(rows, times, view)


def name_charts(
    using: str, view: View, name: str, *, now: datetime, slug: str = "dj-chart-name"
) -> tuple[Chart, Chart]:
    """One job name's charts over ``view`` ending at ``now``."""
    rows, times = _rows(using, view, now, name)
    return shape_name(rows, times, view, name, slug)
