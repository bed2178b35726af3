"""What the admin's pages share: durations and moments for people, JSON, badges, progress bars,
and a job's history with its errors and tracebacks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.utils.html import format_html, format_html_join

from ..models import Job, JobStatus
from ..readable import first_line, format_duration, moment

#: Pretty-printed JSON longer than this many characters is cut on the job's page.
JSON_SHOWN_MAX = 10_000


def _row(*cells: Any) -> str:
    return format_html("<tr>{}</tr>", format_html_join("", "<td>{}</td>", ((c,) for c in cells)))


def json_block(value: Any) -> str:
    """``value`` pretty-printed in a <pre>, cut after JSON_SHOWN_MAX characters."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) <= JSON_SHOWN_MAX:
        return format_html('<pre class="dj-json">{}</pre>', text)
    return format_html(
        '<pre class="dj-json">{}\n…</pre><p class="help">{}</p>',
        text[:JSON_SHOWN_MAX],
        f"Truncated: the first {JSON_SHOWN_MAX:,} of {len(text):,} characters.",
    )


def status_badge(job: Job) -> str:
    """Return the job's status as a coloured badge, "· stopping" once a stop was asked for."""
    label = job.get_status_display()
    if job.status == JobStatus.RUNNING and job.stop_requested_at:
        label += " · stopping"
    return format_html('<span class="dj-badge dj-{}">{}</span>', job.status, label)


def progress(job: Job, message_limit: int | None = None) -> str:
    """Return the progress a running job reported, as a bar and its message ("" if none)."""
    reported = job.progress if isinstance(job.progress, dict) else None
    if not reported:
        return ""
    percent, message = reported.get("percent"), str(reported.get("message") or "")
    if message_limit:
        message = first_line(message, message_limit)
    bar = ""
    if isinstance(percent, (int, float)):
        percent = max(0.0, min(100.0, float(percent)))
        bar = format_html(
            '<progress max="100" value="{}"></progress> {}% ', f"{percent:g}", f"{percent:g}"
        )
    return format_html('<span class="dj-progress">{}{}</span>', bar, message)


def last_traceback(history: Any) -> str:
    """The traceback of the latest attempt that has one, or ""."""
    for entry in reversed(history if isinstance(history, list) else []):
        error = entry.get("error") if isinstance(entry, dict) else None
        if isinstance(error, dict) and error.get("traceback"):
            return str(error["traceback"])
    return ""


def history_table(history: Any, *, open_last: bool = True) -> str:
    """Return a job's ``history`` as a table, a row per attempt or event, the last traceback open
    unless ``open_last`` is False (the page shows it elsewhere)."""
    entries = history if isinstance(history, list) else []
    if not entries:
        return "No attempt has finished yet."
    rows = [
        _history_row(entry, last=open_last and i == len(entries) - 1) for i, entry in enumerate(entries)
    ]
    return format_html(
        '<table class="dj-history"><thead><tr><th>Attempt</th><th>Outcome</th><th>Worker</th>'
        "<th>Started</th><th>Finished</th><th>Duration</th><th>Details</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        format_html_join("", "{}", ((row,) for row in rows)),
    )

def _history_row(entry: Any, last: bool) -> str:
    if not isinstance(entry, dict):
        return _row("—", "?", "", "", "", "", format_html("<pre>{}</pre>", json.dumps(entry)))
    if "event" in entry:
        note = entry.get("note") or ""
        at = moment(entry.get("at"))
        # The operator's name in the Worker column: who did it, as a worker does an attempt.
        by = f"by {entry['by']}" if entry.get("by") else ""
        return _row("—", entry["event"], by, "", at, "", f"Note: {note}" if note else "")
    details = []
    error = entry.get("error")
    if isinstance(error, dict):
        message = f"{error.get('class', '')}: {error.get('message', '')}"
        traceback = str(error.get("traceback") or "")
        details.append(format_html('<div class="dj-error">{}</div>', message))
        if traceback:
            details.append(
                format_html(
                    '<details{}><summary>Traceback</summary>{}</details>',
                    " open" if last else "",
                    format_html('<pre class="dj-traceback">{}</pre>', traceback),
                )
            )
    for key, label in (("retry_at", "next attempt due"), ("run_at", "runs again at")):
        if entry.get(key):
            details.append(format_html("<div>{} {}</div>", label, moment(entry[key])))
    for key, label in (("reason", "reason"), ("rescued_by", "rescued by"), ("warning", "warning")):
        if entry.get(key):
            details.append(format_html("<div>{}: {}</div>", label, entry[key]))
    duration = entry.get("duration")
    took = timedelta(seconds=duration) if isinstance(duration, float | int) else None
    return _row(
        entry.get("attempt", "—"),
        entry.get("outcome", "—"),
        entry.get("worker", "—"),
        moment(entry.get("started_at")),
        moment(entry.get("finished_at")),
        format_duration(took),
        format_html_join("", "{}", ((d,) for d in details)),
    )
