"""OpenTelemetry from a traced request to a real worker's attempts (django_jobs/tracing.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

from django_jobs.models import Job, JobStatus
from tests.support import REPO
from tests.support.procs import database_url, runjobs_env, wait_until
from tests.support.tracing import REQUEST_SPANS, SPANS_FILE_VARIABLE, read_spans
from tests.testapp import jobs

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

WORKER = ("--concurrency", "1", "--no-scheduler")
ENQUEUED = {
    "make_span": lambda: jobs.make_span.enqueue("traced"),
    "fail_then_succeed": lambda: jobs.fail_then_succeed.enqueue(1),
    "sleep_forever": lambda: jobs.sleep_forever.enqueue(),
}


def enqueue_view(request: HttpRequest, what: str) -> HttpResponse:
    return HttpResponse(str(ENQUEUED[what]().pk))


urlpatterns = [path("enqueue/<str:what>/", enqueue_view)]


@pytest.fixture
def traced_site(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    settings.MIDDLEWARE = ["tests.support.tracing.TracingMiddleware", *settings.MIDDLEWARE]
    REQUEST_SPANS.clear()


@pytest.fixture
def traced_worker(worker_process: Callable[..., Any], tmp_path: Path) -> Callable[[], Path]:
    """Start a worker whose spans go to a file; return the file."""
    spans = tmp_path / "spans.jsonl"

    def start() -> Path:
        worker_process(*WORKER, env={"DJANGO_SETTINGS_MODULE": "tests.settings_tracing",
                                     SPANS_FILE_VARIABLE: str(spans)})
        return spans

    return start


def enqueue_in_request(what: str) -> tuple[Job[Any], dict[str, str]]:
    """GET the view that enqueues ``what``; return the job and the request's span ids."""
    response = Client().get(f"/enqueue/{what}/")
    assert response.status_code == 200
    (request_span,) = REQUEST_SPANS.get_finished_spans()
    context = request_span.get_span_context()
    assert context is not None
    return Job.objects.get(pk=int(response.content)), {
        "trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def attempt_spans(spans_file: Path, job: Job[Any], count: int) -> list[dict[str, Any]]:
    """Wait for ``count`` attempt spans of ``job`` in the worker's file; return them by attempt."""
    def found() -> list[dict[str, Any]] | None:
        mine = [s for s in read_spans(spans_file) if s["attributes"].get("django_jobs.job.id") == job.pk]
        return mine if len(mine) >= count else None

    spans = wait_until(found, timeout=60, message=f"{count} attempt span(s) of job #{job.pk}")
    return sorted(spans, key=lambda s: s["attributes"]["django_jobs.job.attempt"])


def test_tracing__the_job_span_continues_the_trace_of_the_request_that_enqueued_it(
    traced_site: None, traced_worker: Callable[[], Path]
) -> None:
    job, request = enqueue_in_request("make_span")
    assert (job.traceparent or "").startswith(f"00-{request['trace_id']}-{request['span_id']}-")

    spans_file = traced_worker()

    (span,) = attempt_spans(spans_file, job, 1)
    assert (span["trace_id"], span["parent_span_id"]) == (request["trace_id"], request["span_id"])
    assert (span["name"], span["kind"], span["status"]) == ("process tests.testapp.jobs.make_span", "CONSUMER", "UNSET")
    assert span["attributes"] == {
        "messaging.system": "django_jobs",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "default",
        "messaging.message.id": str(job.pk),
        "django_jobs.job.id": job.pk,
        "django_jobs.job.name": "tests.testapp.jobs.make_span",
        "django_jobs.job.queue": "default",
        "django_jobs.job.attempt": 1,
        "django_jobs.job.max_attempts": job.max_attempts,
        "django_jobs.worker.id": span["attributes"]["django_jobs.worker.id"],
        "django_jobs.job.outcome": "succeeded",
    }
    assert span["links"] == [{**request, "attributes": {"django_jobs.link": "enqueued_by"}}]
    # The span the job made is a child of the attempt's, in the same trace.
    wait_until(lambda: any(s["name"] == "inside traced" for s in read_spans(spans_file)), timeout=10,
               message="the job's own span")
    (inner,) = [s for s in read_spans(spans_file) if s["name"] == "inside traced"]
    assert (inner["trace_id"], inner["parent_span_id"]) == (request["trace_id"], span["span_id"])
    # The span ends when the outcome is decided; the row is written a moment later.
    wait_until(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, timeout=30,
               message="the job's outcome written")


def test_tracing__a_failed_attempt_records_its_error_and_the_retry_is_a_span_of_the_same_trace(
    traced_site: None, traced_worker: Callable[[], Path]
) -> None:
    job, request = enqueue_in_request("fail_then_succeed")

    first, second = attempt_spans(traced_worker(), job, 2)

    for span in (first, second):
        assert (span["trace_id"], span["parent_span_id"]) == (request["trace_id"], request["span_id"])
    assert first["span_id"] != second["span_id"]
    assert (first["attributes"]["django_jobs.job.attempt"], first["attributes"]["django_jobs.job.outcome"]) == (
        1, "failed")
    assert first["status"] == "ERROR"
    assert first["status_description"] == "builtins.ConnectionError: flaky attempt 1"
    assert first["attributes"]["error.type"] == "builtins.ConnectionError"
    (event,) = first["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "builtins.ConnectionError"
    assert event["attributes"]["exception.message"] == "flaky attempt 1"
    assert "raise ConnectionError" in event["attributes"]["exception.stacktrace"]
    assert (second["attributes"]["django_jobs.job.attempt"], second["attributes"]["django_jobs.job.outcome"],
            second["status"], second["events"]) == (2, "succeeded", "UNSET", [])


def test_tracing__an_attempt_killed_for_its_timeout_gets_its_span_from_the_worker(
    traced_site: None, traced_worker: Callable[[], Path]
) -> None:
    job, request = enqueue_in_request("sleep_forever")

    spans = attempt_spans(traced_worker(), job, 2)

    assert [s["attributes"]["django_jobs.job.outcome"] for s in spans] == ["timeout", "timeout"]
    for span in spans:
        assert (span["trace_id"], span["parent_span_id"], span["status"]) == (
            request["trace_id"], request["span_id"], "ERROR")
        assert span["attributes"]["error.type"] == "django_jobs.exceptions.JobTimeout"
        # From the attempt's start, not from the kill: it ran past its 0.5 s timeout.
        assert span["duration"] >= 0.5
    wait_until(lambda: Job.objects.get(pk=job.pk).status == JobStatus.DEAD, timeout=30, message="the job dead")


# Run in a fresh interpreter where ``import opentelemetry`` fails, as without the otel extra:
# enqueue a job, run it with a real worker (--burst), and report what was imported.
WITHOUT_OTEL = textwrap.dedent("""
    import sys

    class NoOpenTelemetry:
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, NoOpenTelemetry())

    import django
    django.setup()
    from django.core.management import call_command
    from django_jobs import tracing
    from django_jobs.models import Job
    from tests.testapp import jobs

    job = jobs.record.enqueue("no otel")
    call_command("runjobs", "--burst", "--concurrency", "1", "--no-scheduler")
    row = Job.objects.get(pk=job.pk)
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
    print("RESULT", row.status, row.traceparent, tracing.ENABLED, loaded)
""")


def test_tracing__without_opentelemetry_jobs_are_enqueued_and_run_and_nothing_imports_it() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL], cwd=REPO, env=runjobs_env(database_url()),
        capture_output=True, text=True, timeout=120, check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT succeeded None False []" in result.stdout, result.stdout + result.stderr
