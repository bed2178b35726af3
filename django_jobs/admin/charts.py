"""What the pages with charts share: the period selector and the rendered charts, for
templates/admin/django_jobs/charts.html (the overview, the job list of one name, a schedule)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from .. import charts, timeline

TEMPLATE = "admin/django_jobs/charts.html"
#: The query parameter that picks the charts' period (timeline.VIEWS).
CHART_PARAMETER = "range"


def chart_context(
    request: HttpRequest | None, view: timeline.View, groups: Iterable[tuple[str, Sequence[charts.Chart]]]
) -> dict[str, Any]:
    """The template's context: the groups of rendered charts (a heading each) and the selector,
    whose links keep the page's other query parameters (its filters) and set ``range``; none
    without a request."""
    choices = []
    for key, option in timeline.VIEWS.items():
        if request is None:
            break
        query = request.GET.copy()
        query[CHART_PARAMETER] = key
        choices.append(
            {"label": option.label, "query": query.urlencode(), "current": option is view}
        )
    return {
        "chart_view": view,
        "chart_views": choices,
        "chart_groups": [(heading, [charts.render(c) for c in group]) for heading, group in groups],
    }


def render_charts(groups: Iterable[tuple[str, Sequence[charts.Chart]]]) -> SafeString:
    """The charts' block as HTML without a period selector, for a page that has no template of
    its own to include it (a schedule's, as a read-only field)."""
    return render_to_string(TEMPLATE, chart_context(None, timeline.VIEWS["day"], groups))
