"""A job's place in its workflow, on its admin page: the upstream jobs it waits on and the
downstream jobs that wait on it, listed with their statuses, and, past a few, a small graph drawn
here as inline SVG (no script, nothing fetched)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from ..models import Dependency, Job, JobStatus

#: Jobs listed on each side; the rest are counted by status.
LISTED = 50
#: Past this many jobs on either side, the page draws the graph too.
GRAPH_AFTER = 3
#: Jobs drawn one by one in a column of the graph; past this, one box per status with its count.
DRAWN = 8

TEMPLATE = "admin/django_jobs/job/workflow.html"
# The badges' colours (static/django_jobs/admin.css), for the graph's boxes.
COLOURS = {
    JobStatus.WAITING.value: "#7b6aa8",
    JobStatus.QUEUED.value: "#5b7083",
    JobStatus.RUNNING.value: "#2f6fbf",
    JobStatus.RETRYING.value: "#c77700",
    JobStatus.SUCCEEDED.value: "#2e7d32",
    JobStatus.STOPPED.value: "#6d6d6d",
    JobStatus.DEAD.value: "#b3261e",
}


@dataclass
class Side:
    """The upstream or the downstream jobs of one job."""

    title: str
    jobs: list[Job] = field(default_factory=list)
    #: How many there are in all, by status.
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def more(self) -> int:
        return self.total - len(self.jobs)


def _side(title: str, using: str, ids_of: object) -> Side:
    jobs = Job.objects.using(using).filter(pk__in=ids_of)
    counts = dict(jobs.order_by().values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    listed = list(jobs.order_by("pk").only("id", "name", "status", "stop_requested_at")[:LISTED])
    return Side(title, listed, counts)


def sides(job: Job) -> tuple[Side, Side]:
    """The job's upstream and downstream jobs."""
    using = job._state.db or "default"
    edges = Dependency.objects.using(using)
    upstream = _side("Upstream jobs (it waits on these)", using,
                     edges.filter(downstream_id=job.pk).values("upstream_id"))
    downstream = _side("Downstream jobs (these wait on it)", using,
                       edges.filter(upstream_id=job.pk).values("downstream_id"))
    return upstream, downstream


def has_workflow(job: Job) -> bool:
    """Whether the job is part of a workflow (so its page shows the section)."""
    if job.downstream_version or job.pending_upstream or job.stopped_by:
        return True
    return Dependency.objects.using(job._state.db or "default").filter(downstream_id=job.pk).exists()


def render(job: Job, admin_site: str = "admin") -> SafeString:
    """The section of the job's page: both lists, and the graph when there are more than a few."""
    upstream, downstream = sides(job)
    graph = graph_svg(job, upstream, downstream, admin_site) if max(upstream.total, downstream.total) > GRAPH_AFTER else ""
    return mark_safe(render_to_string(TEMPLATE, {  # noqa: S308 - the template escapes; the SVG is format_html
        "sides": [side for side in (upstream, downstream) if side.total],
        "graph": graph,
        "admin_site": admin_site,
    }))


def _job_url(job_id: int, admin_site: str) -> str:
    return reverse(f"{admin_site}:django_jobs_job_change", args=[job_id])


# -- the graph -------------------------------------------------------------------------------------

_BOX_W, _BOX_H, _GAP, _COLUMN = 170, 26, 8, 250


def _boxes(side: Side, admin_site: str) -> list[tuple[str, str, str]]:
    """(label, status, url) of each box of a column: a job each, or a status each past DRAWN."""
    if side.total <= DRAWN:
        return [(f"#{j.pk} {j.name.rsplit('.', 1)[-1]}", j.status, _job_url(j.pk, admin_site)) for j in side.jobs]
    order = list(COLOURS)
    return [
        (f"{count:,} {status}", status, "")
        for status, count in sorted(side.counts.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99)
    ]


def graph_svg(job: Job, upstream: Side, downstream: Side, admin_site: str = "admin") -> SafeString:
    """Upstream jobs left, this job in the middle, downstream jobs right, with an arrow per edge."""
    columns = [_boxes(upstream, admin_site), [(f"#{job.pk} (this job)", job.status, "")], _boxes(downstream, admin_site)]
    rows = max(len(c) for c in columns)
    height = rows * (_BOX_H + _GAP) + _GAP
    width = 2 * _COLUMN + _BOX_W + 2 * _GAP

    def top(index: int, count: int) -> int:
        return _GAP + (rows - count) * (_BOX_H + _GAP) // 2 + index * (_BOX_H + _GAP)

    middle_y = top(0, 1) + _BOX_H // 2
    parts: list[SafeString] = []
    for column, boxes in enumerate(columns):
        x = _GAP + column * _COLUMN
        for index, (label, status, url) in enumerate(boxes):
            y = top(index, len(boxes))
            if column != 1:  # the arrow to (from) the middle box
                x1, x2 = (x + _BOX_W, _GAP + _COLUMN) if column == 0 else (_GAP + _COLUMN + _BOX_W, x)
                y1, y2 = (y + _BOX_H // 2, middle_y) if column == 0 else (middle_y, y + _BOX_H // 2)
                parts.append(format_html(
                    '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" marker-end="url(#dj-arrow)"/>',
                    x1, y1, x2 - 2, y2,
                ))
            box = format_html(
                '<g class="dj-node dj-{}"><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" rx="4" '
                'fill="{}"/><text x="{}" y="{}" fill="#fff" font-size="12">{}</text></g>',
                status, f"{label} ({status})", x, y, _BOX_W, _BOX_H, COLOURS.get(status, "#777"),
                x + 8, y + 17, label[:24],
            )
            parts.append(format_html('<a href="{}">{}</a>', url, box) if url else box)
    return format_html(
        '<svg class="dj-workflow-graph" role="img" aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}" '
        'xmlns="http://www.w3.org/2000/svg"><defs><marker id="dj-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#999"/>'
        "</marker></defs>{}</svg>",
        f"Job #{job.pk} with {upstream.total} upstream and {downstream.total} downstream jobs",
        width, height, width, height, format_html_join("", "{}", ((p,) for p in parts)),
    )
