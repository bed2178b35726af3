"""Line charts as server-rendered SVG, for the admin: no JavaScript, nothing fetched.

A ``Chart`` is a row of evenly spaced times and a few ``Line``\\ s of values over them (None where
nothing was recorded: the line breaks there). ``render()`` turns it into a ``<figure>`` holding
the SVG, a legend and the same numbers as a table in a ``<details>``, so they can be read without
the picture (screen readers, copying into an incident report).

Colours come from CSS variables (``--dj-chart-<key>``, defined for the admin's light and dark
themes in static/django_jobs/admin.css, with a fallback here that reads on both), text takes
``currentColor`` and grid lines the admin's ``--hairline-color``; each line also has its own dash
pattern, so lines differ without colour too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# The viewBox; the page scales it to the figure's width (about 420 to 560 px on the admin's pages,
# where 12 units of text read as 10 to 13 px).
WIDTH, HEIGHT = 480, 170
# The plot's area inside the viewBox: room on the left for the values, below for the times.
LEFT, RIGHT, TOP, BOTTOM = 54, 472, 10, 144
#: Round ceilings for an axis of seconds: whole seconds, minutes and hours, not "1.67 min".
SECOND_CEILINGS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 4 * 3600, 8 * 3600,
                   12 * 3600, 86400)

#: Per line key: the fallback colour (readable on the light and dark themes) and a dash pattern.
STYLES: dict[str, tuple[str, str]] = {
    "succeeded": ("#2e8b3a", ""),
    "stopped": ("#8a8a8a", "6 3"),
    "dead": ("#d2453a", "2 2"),
    "depth": ("#3b7dd8", ""),
    "lag": ("#d98a00", ""),
    "p50": ("#3b7dd8", ""),
    "p95": ("#9b6fd1", "6 3"),
}


@dataclass(frozen=True)
class Line:
    """One series: a CSS-friendly ``key`` (its colour), a label, and a value per time or None."""

    key: str
    label: str
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class Chart:
    """What one chart draws. ``unit`` is "jobs" (counts) or "seconds"."""

    id: str
    title: str
    times: tuple[datetime, ...]
    lines: tuple[Line, ...]
    unit: str = "jobs"
    #: strftime format of the times on the axis and in the table.
    clock: str = "%H:%M"

    @property
    def empty(self) -> bool:
        return not any(v is not None for line in self.lines for v in line.values)


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= ``value`` (1 for 0 or less)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if value <= factor * power * (1 + 1e-9):
            return float(factor * power)
    return 10.0 * power  # pragma: no cover - the loop always returns


def axis_ceiling(value: float, unit: str) -> float:
    """The top of an axis showing ``value``: ``nice_ceiling``, in round durations for seconds."""
    if unit == "seconds" and value > 1:
        return float(next((c for c in SECOND_CEILINGS if value <= c), 86400 * nice_ceiling(value / 86400)))
    return nice_ceiling(value)


def format_value(value: float, unit: str) -> str:
    """A value as the axis and the table show it: ``1,234``, ``2.5k``; ``120 ms``, ``1.5 s``."""
    if unit == "seconds":
        if value == 0:
            return "0 s"
        if value < 1:
            return f"{value * 1000:.0f} ms"
        if value < 60:
            return f"{value:.3g} s"
        if value < 3600:
            return f"{value / 60:.3g} min"
        if value < 86400:
            return f"{value / 3600:.3g} h"
        return f"{value / 86400:.3g} d"
    if value >= 10_000:
        return f"{value / 1000:.3g}k" if value < 1_000_000 else f"{value / 1_000_000:.3g}M"
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2g}"


def x_of(index: int, count: int) -> float:
    """The horizontal position of the ``index``-th of ``count`` times."""
    if count <= 1:
        return (LEFT + RIGHT) / 2
    return LEFT + (RIGHT - LEFT) * index / (count - 1)


def y_of(value: float, top: float) -> float:
    """The vertical position of ``value`` on an axis from 0 to ``top``."""
    return BOTTOM - (BOTTOM - TOP) * min(value, top) / top


def runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """The stretches of consecutive recorded values: where a line is drawn without a break."""
    stretches: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                stretches.append(current)
            current = []
        else:
            current.append((index, value))
    if current:
        stretches.append(current)
    return stretches


def summary(chart: Chart) -> str:
    """One sentence per line for the SVG's description: its total or range, and its peak."""
    if chart.empty:
        return "Nothing was recorded in this period."
    parts = []
    for line in chart.lines:
        known = [(v, i) for i, v in enumerate(line.values) if v is not None]
        if not known:
            parts.append(f"{line.label}: nothing recorded.")
            continue
        peak, at = max(known)
        when = chart.times[at].strftime(chart.clock)
        if chart.unit == "jobs" and line.key not in ("depth",):
            total = format_value(sum(v for v, _ in known), chart.unit)
            parts.append(f"{line.label}: {total} in all, at most {format_value(peak, chart.unit)} at {when}.")
        else:
            parts.append(
                f"{line.label}: from {format_value(min(known)[0], chart.unit)} to "
                f"{format_value(peak, chart.unit)} (at {when})."
            )
    return " ".join(parts)


def svg(chart: Chart) -> str:
    """The chart as an ``<svg>`` element (markup)."""
    title_id, desc_id = escape(f"{chart.id}-title"), escape(f"{chart.id}-desc")
    count = len(chart.times)
    known = [v for line in chart.lines for v in line.values if v is not None]
    top = axis_ceiling(max(known, default=0.0), chart.unit)
    out = [
        f'<svg class="dj-chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg" '
        f'font-size="12" style="color: inherit">',
        f'<title id="{title_id}">{escape(chart.title)}</title>',
        f'<desc id="{desc_id}">{escape(summary(chart))}</desc>',
    ]
    grid = 'style="stroke: var(--hairline-color, #8884)" stroke-width="1"'
    for fraction in (0, 0.5, 1):
        y = y_of(top * fraction, top)
        out.append(f'<line class="dj-grid" x1="{LEFT}" x2="{RIGHT}" y1="{y:.1f}" y2="{y:.1f}" {grid}/>')
        out.append(
            f'<text class="dj-y" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'fill="currentColor">{escape(format_value(top * fraction, chart.unit))}</text>'
        )
    if count:
        ticks = sorted({0, count // 2, count - 1})
        for index in ticks:
            anchor = "start" if index == 0 and count > 1 else "end" if index == count - 1 and count > 1 else "middle"
            out.append(
                f'<text class="dj-x" x="{x_of(index, count):.1f}" y="{HEIGHT - 8}" '
                f'text-anchor="{anchor}" fill="currentColor">'
                f"{escape(chart.times[index].strftime(chart.clock))}</text>"
            )
    if chart.empty:
        out.append(
            f'<text class="dj-empty" x="{(LEFT + RIGHT) / 2}" y="{(TOP + BOTTOM) / 2}" '
            f'text-anchor="middle" fill="currentColor" opacity="0.7">Nothing recorded in this period</text>'
        )
    for line in chart.lines:
        colour, dash = STYLES.get(line.key, ("#3b7dd8", ""))
        paint = f"var(--dj-chart-{line.key}, {colour})"
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="dj-line dj-line-{escape(line.key)}" data-label="{escape(line.label)}">')
        for stretch in runs(line.values):
            if len(stretch) == 1:
                index, value = stretch[0]
                out.append(
                    f'<circle cx="{x_of(index, count):.1f}" cy="{y_of(value, top):.1f}" r="2.5" '
                    f'style="fill: {paint}"/>'
                )
            else:
                points = " ".join(f"{x_of(i, count):.1f},{y_of(v, top):.1f}" for i, v in stretch)
                out.append(
                    f'<polyline points="{points}" fill="none" stroke-width="1.75" '
                    f'stroke-linejoin="round" style="stroke: {paint}"{dashes}/>'
                )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def table(chart: Chart) -> str:
    """The chart's numbers as an HTML table: a row per time, a column per line."""
    head = "".join(f'<th scope="col" class="num">{escape(line.label)}</th>' for line in chart.lines)
    body = []
    for index, moment in enumerate(chart.times):
        cells = "".join(
            '<td class="num">'
            + ("—" if line.values[index] is None else escape(format_value(line.values[index] or 0, chart.unit)))
            + "</td>"
            for line in chart.lines
        )
        body.append(f'<tr><th scope="row">{escape(moment.strftime(chart.clock))}</th>{cells}</tr>')
    return (
        f'<table class="dj-chart-table"><caption>{escape(chart.title)}</caption>'
        f'<thead><tr><th scope="col">Time</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def render(chart: Chart) -> SafeString:
    """The chart as a ``<figure>``: the SVG, its legend, and its numbers in a ``<details>``."""
    legend = "".join(
        f'<li class="dj-legend-{escape(line.key)}"><span class="dj-swatch" style="background: '
        f'var(--dj-chart-{line.key}, {STYLES.get(line.key, ("#3b7dd8", ""))[0]})"></span>'
        f"{escape(line.label)}</li>"
        for line in chart.lines
    )
    return mark_safe(  # noqa: S308 - every value above went through escape()
        f'<figure class="dj-chart" id="{escape(chart.id)}" data-empty="{str(chart.empty).lower()}">'
        f"<figcaption>{escape(chart.title)}</figcaption>{svg(chart)}"
        f'<ul class="dj-legend">{legend}</ul>'
        f"<details><summary>Numbers</summary>{table(chart)}</details></figure>"
    )
