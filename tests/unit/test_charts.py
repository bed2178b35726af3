"""charts.py: a series of values as SVG (axes, lines, gaps, empty and single-point series), and its
numbers as a table; no database."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from django_jobs import charts
from django_jobs.charts import Chart, Line

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def times(n: int) -> tuple[datetime, ...]:
    return tuple(T0 + timedelta(minutes=i) for i in range(n))


def chart(*values: float | None, unit: str = "jobs", key: str = "succeeded") -> Chart:
    return Chart("c", "default: jobs finished per minute", times(len(values)),
                 (Line(key, "Succeeded", tuple(values)),), unit=unit)


def parsed(c: Chart) -> ET.Element:
    return ET.fromstring(charts.svg(c))


def points(c: Chart) -> list[list[tuple[float, float]]]:
    return [
        [tuple(float(n) for n in p.split(",")) for p in line.get("points", "").split()]  # type: ignore[misc]
        for line in parsed(c).iter(f"{SVG}polyline")
    ]


def texts(c: Chart, cls: str) -> list[str]:
    return [t.text or "" for t in parsed(c).iter(f"{SVG}text") if t.get("class") == cls]


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (-3, 1), (0.3, 0.5), (1, 1), (1.01, 2), (3, 5), (7, 10), (10, 10), (11, 20), (4500, 5000)],
)
def test_nice_ceiling__rounds_up_to_1_2_or_5_times_a_power_of_ten(value: float, ceiling: float) -> None:
    assert charts.nice_ceiling(value) == pytest.approx(ceiling)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(0, "jobs", "0"), (1234, "jobs", "1,234"), (25_000, "jobs", "25k"), (2_500_000, "jobs", "2.5M"),
     (0.5, "jobs", "0.5"), (0, "seconds", "0 s"), (0.12, "seconds", "120 ms"), (1.5, "seconds", "1.5 s"),
     (150, "seconds", "2.5 min"), (5400, "seconds", "1.5 h"), (172800, "seconds", "2 d")],
)
def test_format_value__counts_and_durations(value: float, unit: str, text: str) -> None:
    assert charts.format_value(value, unit) == text


def test_svg__is_well_formed_with_a_title_and_a_description_it_is_labelled_by() -> None:
    root = parsed(chart(1, 4, 2))

    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c-title c-desc"
    assert root.find(f"{SVG}title").text == "default: jobs finished per minute"  # type: ignore[union-attr]
    desc = root.find(f"{SVG}desc").text  # type: ignore[union-attr]
    assert desc == "Succeeded: 7 in all, at most 4 at 12:01."


def test_svg__the_y_axis_goes_from_0_to_a_round_ceiling_above_the_peak() -> None:
    assert texts(chart(1, 4, 2), "dj-y") == ["0", "2.5", "5"]
    assert texts(chart(0.2, 1.5, unit="seconds", key="p50"), "dj-y") == ["0 s", "1 s", "2 s"]
    assert texts(chart(0.2, 0.3, unit="seconds", key="p50"), "dj-y") == ["0 s", "250 ms", "500 ms"]


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0.3, 0.5), (1.5, 2), (40, 60), (90, 120), (3000, 3600), (100_000, 2 * 86400)]
)
def test_axis_ceiling__durations_round_up_to_whole_seconds_minutes_hours_and_days(
    value: float, ceiling: float
) -> None:
    assert charts.axis_ceiling(value, "seconds") == ceiling


def test_svg__the_x_axis_names_the_first_middle_and_last_times() -> None:
    assert texts(chart(*range(61)), "dj-x") == ["12:00", "12:30", "13:00"]


def test_svg__values_map_to_points_left_to_right_and_bottom_up() -> None:
    (line,) = points(chart(0, 5, 10))

    xs = [x for x, _ in line]
    ys = [y for _, y in line]
    assert xs == [charts.LEFT, (charts.LEFT + charts.RIGHT) / 2, charts.RIGHT]
    assert ys == [charts.BOTTOM, (charts.BOTTOM + charts.TOP) / 2, charts.TOP]


def test_svg__a_missing_value_breaks_the_line_and_a_lone_value_is_a_dot() -> None:
    c = chart(1, 2, None, 3, None, 4, 5)

    assert [len(p) for p in points(c)] == [2, 2]
    circles = list(parsed(c).iter(f"{SVG}circle"))
    assert len(circles) == 1
    assert float(circles[0].get("cx", "")) == pytest.approx(charts.x_of(3, 7))


def test_svg__a_single_point_series_is_one_dot_in_the_middle() -> None:
    c = chart(3)

    assert points(c) == []
    (dot,) = parsed(c).iter(f"{SVG}circle")
    assert float(dot.get("cx", "")) == (charts.LEFT + charts.RIGHT) / 2
    assert texts(c, "dj-x") == ["12:00"]


def test_svg__an_empty_series_says_so_and_draws_no_line() -> None:
    for c in (chart(None, None, None), chart()):
        assert c.empty
        assert points(c) == [] and not list(parsed(c).iter(f"{SVG}circle"))
        assert texts(c, "dj-empty") == ["Nothing recorded in this period"]
        assert parsed(c).find(f"{SVG}desc").text == "Nothing was recorded in this period."  # type: ignore[union-attr]


def test_svg__zeros_are_a_line_on_the_axis_not_an_empty_chart() -> None:
    c = chart(0, 0, 0)

    assert not c.empty
    assert [y for _, y in points(c)[0]] == [charts.BOTTOM] * 3


def test_svg__colours_follow_the_theme_through_css_variables_and_text_the_current_colour() -> None:
    text = charts.svg(chart(1, 2))

    assert "var(--dj-chart-succeeded, #" in text
    assert "var(--hairline-color" in text
    assert all(t.get("fill") == "currentColor" for t in parsed(chart(1, 2)).iter(f"{SVG}text"))
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)  # nothing fetched


def test_svg__escapes_what_it_is_given() -> None:
    c = Chart('a"<b>', "<script>", times(2), (Line("dead", "x<y", (1, 2)),))

    text = charts.render(c)

    assert "<script>" not in text and "&lt;script&gt;" in text
    assert 'id="a&quot;&lt;b&gt;"' in text


def test_table__a_row_per_time_and_a_dash_where_nothing_was_recorded() -> None:
    c = Chart("c", "t", times(3), (Line("p50", "Median", (0.25, None, 2.0)), Line("p95", "p95", (1, 2, 3))),
              unit="seconds")

    rows = re.findall(r"<tr><th scope=\"row\">(.*?)</th>(.*?)</tr>", charts.table(c))

    assert [(t, re.findall(r">([^<]*)</td>", cells)) for t, cells in rows] == [
        ("12:00", ["250 ms", "1 s"]), ("12:01", ["—", "2 s"]), ("12:02", ["2 s", "3 s"]),
    ]


def test_render__a_figure_with_the_svg_a_legend_and_the_numbers_in_details() -> None:
    html = charts.render(chart(1, 2))

    assert html.startswith('<figure class="dj-chart" id="c" data-empty="false">')
    assert "<svg" in html and "<details><summary>Numbers</summary><table" in html
    assert '<li class="dj-legend-succeeded">' in html
