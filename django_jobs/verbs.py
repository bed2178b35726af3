"""The operator's verbs on jobs (retry, stop, dead-letter) as people see them: what each is
called, what it does to a job of each status, how it reports, and what it would do to a selection.

The transitions themselves are the job queryset's methods (``JobQuerySet.retry()`` and friends);
the admin (admin/verbs.py) and ``manage.py jobs`` (cli/) both call them, and both word them with
what is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet
from django.utils.translation import ngettext

from .models import DEAD_LETTER_FROM, RETRY_FROM, STOP_FROM, Job, JobStatus, Transitioned

#: The longest dead-letter note kept in a job's history.
NOTE_MAX_LENGTH = 500


@dataclass(frozen=True)
class Verb:
    """An operator transition as people see it: its names, the admin permission it takes, what it
    does to a job of each status, and its report."""

    #: The JobQuerySet method, and has_<name>_permission on the admin.
    name: str
    slug: str
    label: str
    permission: str
    allowed: tuple[str, ...]
    #: Past tense for one job, and the ngettext pair for the report.
    past: str
    done: tuple[str, str]
    #: What the confirmation page says it does.
    explanation: str
    #: Why a job is skipped, by the status (or Transitioned key) it had: (one, many).
    skips: dict[str, tuple[str, str]]
    takes_note: bool = False

    def skip_reason(self, key: str, count: int) -> str:
        one, many = self.skips.get(key, (f"it is {key}", f"they are {key}"))
        return ngettext(one, many, count)

    def outcome(self, status: str, count: int) -> str:
        """What happens to ``count`` jobs of ``status``, for the confirmation page."""
        if status not in self.allowed:
            return f"skipped: {self.skip_reason(status, count)}"
        if self.name == "stop" and status == JobStatus.RUNNING:
            return "asked to stop"
        return self.past

    def report(self, result: Transitioned) -> str:
        """ "3 jobs retried; 1 skipped: it is running." """
        parts = []
        if self.name == "stop":
            asked = result.done[JobStatus.RUNNING]
            stopped = result.done_count - asked
            if stopped or not asked:
                parts.append(ngettext(*self.done, stopped) % {"count": stopped})
            if asked:
                parts.append(
                    ngettext(
                        "%(count)d running job asked to stop",
                        "%(count)d running jobs asked to stop",
                        asked,
                    )
                    % {"count": asked}
                )
        else:
            parts.append(ngettext(*self.done, result.done_count) % {"count": result.done_count})
        for key, count in sorted(result.skipped.items()):
            parts.append(f"{count} skipped: {self.skip_reason(key, count)}")
        return "; ".join(parts) + "."

    def audit_message(self, via: str, note: str = "") -> str:
        """The change message of each job's LogEntry: "Retried from the admin." plus the note."""
        done = "Stopped (asked to stop, if it was running)" if self.name == "stop" else self.past.capitalize()
        return f"{done} from {via}." + (f" Note: {note}" if note else "")

    def report_one(self, job: Job, result: Transitioned) -> str:
        """ "Job #12 retried." or "Job #12 not retried: it is running." """
        if result.done_count:
            past = (
                "asked to stop"
                if result.done[JobStatus.RUNNING] and self.name == "stop"
                else self.past
            )
            return f"Job #{job.pk} {past}."
        (key,) = result.skipped or {job.status: 1}
        return f"Job #{job.pk} not {self.past}: {self.skip_reason(key, 1)}."


_SUCCEEDED = ("it succeeded", "they succeeded")
VERBS = {
    verb.slug: verb
    for verb in (
        Verb(
            name="retry",
            slug="retry",
            label="Retry",
            permission="django_jobs.retry_job",
            allowed=tuple(RETRY_FROM),
            past="retried",
            done=("%(count)d job retried", "%(count)d jobs retried"),
            explanation="Dead, stopped and retrying jobs go back to the queue, due now, their "
            "history kept. Each starts over: a fresh set of attempts, and a backoff that starts "
            "again from its first delay. A job that waits on upstream jobs waits again on those "
            "that haven't succeeded, and the jobs a failure stopped downstream of a retried job "
            "wait again too.",
            skips={
                JobStatus.WAITING: ("it is waiting on upstream jobs", "they are waiting on upstream jobs"),
                JobStatus.QUEUED: ("it is already queued", "they are already queued"),
                JobStatus.RUNNING: ("it is running", "they are running"),
                JobStatus.SUCCEEDED: _SUCCEEDED,
                "key_taken": (
                    "another waiting or running job holds its unique_key",
                    "other waiting or running jobs hold their unique_key",
                ),
                "upstream_failed": (
                    "an upstream job of it failed for good: retry that one",
                    "an upstream job of theirs failed for good: retry that one",
                ),
            },
        ),
        Verb(
            name="stop",
            slug="stop",
            label="Stop",
            permission="django_jobs.stop_job",
            allowed=tuple(STOP_FROM),
            past="stopped",
            done=("%(count)d job stopped", "%(count)d jobs stopped"),
            explanation="Waiting, queued and retrying jobs end stopped at once; running jobs are "
            "asked to stop and get STOP_GRACE seconds to return before their process is killed. "
            "Jobs waiting downstream of a stopped job end stopped too.",
            skips={
                JobStatus.SUCCEEDED: ("it already succeeded", "they already succeeded"),
                JobStatus.STOPPED: ("it is already stopped", "they are already stopped"),
                JobStatus.DEAD: ("it is dead", "they are dead"),
                "stopping": ("it was already asked to stop", "they were already asked to stop"),
            },
        ),
        Verb(
            name="dead_letter",
            slug="dead-letter",
            label="Dead-letter",
            permission="django_jobs.deadletter_job",
            allowed=tuple(DEAD_LETTER_FROM),
            past="dead-lettered",
            done=("%(count)d job dead-lettered", "%(count)d jobs dead-lettered"),
            explanation="Waiting, queued, retrying and stopped jobs end dead, with your note in their "
            "history; they stay on the dead letters page until retried or pruned. Jobs waiting "
            "downstream of them end stopped.",
            skips={
                JobStatus.RUNNING: (
                    "it is running: stop it first",
                    "they are running: stop them first",
                ),
                JobStatus.SUCCEEDED: _SUCCEEDED,
                JobStatus.DEAD: ("it is already dead", "they are already dead"),
            },
            takes_note=True,
        ),
    )
}


@dataclass(frozen=True)
class Preview:
    """What a verb would do to a selection of jobs, by name and status, before it does it."""

    #: One row per (name, status): {"name", "status", "count", "outcome"}.
    rows: list[dict[str, Any]]
    #: Jobs the verb would change, and jobs selected.
    will: int
    total: int
    #: "2 of 3 jobs will be retried; 1 skipped."
    summary: str


def preview(verb: Verb, queryset: QuerySet[Any]) -> Preview:
    """Count ``queryset``'s jobs by name and status and say what ``verb`` would do to each group.

    One grouped query; it changes nothing. A job may move between this count and the verb (a
    worker claims it, say): the verb's own report says what it did.
    """
    groups = (
        queryset.order_by()
        .values("name", "status")
        .annotate(count=Count("pk"))
        .order_by("name", "status")
    )
    rows = [{**g, "outcome": verb.outcome(g["status"], g["count"])} for g in groups]
    will = sum(r["count"] for r in rows if r["status"] in verb.allowed)
    total = sum(r["count"] for r in rows)
    past = "stopped (or, if running, asked to stop)" if verb.name == "stop" else verb.past
    summary = ngettext(
        "%(will)d of %(total)d job will be %(past)s; %(skipped)d skipped.",
        "%(will)d of %(total)d jobs will be %(past)s; %(skipped)d skipped.",
        total,
    ) % {"will": will, "total": total, "past": past, "skipped": total - will}
    return Preview(rows, will, total, summary)
