"""OpenTelemetry for the tracing tests: spans a worker subprocess finishes, written where the test
reads them, and a request middleware that traces like an instrumented Django project.

Imports the SDK (the ``test`` extra has it); only tests/settings_tracing.py and the tracing tests
import this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.http import HttpRequest, HttpResponse
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

#: The file a worker started with tests.settings_tracing appends its finished spans to.
SPANS_FILE_VARIABLE = "DJANGO_JOBS_TEST_SPANS"


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as plain JSON: ids in W3C hex, what the tests assert on."""
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "kind": span.kind.name,
        "duration": ((span.end_time or 0) - (span.start_time or 0)) / 1e9,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}",
             "attributes": dict(link.attributes or {})}
            for link in span.links
        ],
        "pid": os.getpid(),
    }


class JsonLinesExporter(SpanExporter):
    """Append each finished span to a file as one JSON line (every process of a worker may)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(span)) + "\n" for span in spans)
        # One write with O_APPEND: lines of the worker and its children never interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def export_to_file(path: str) -> None:
    """Make this process's global tracer provider write every span to ``path`` as it ends."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
    trace.set_tracer_provider(provider)


def read_spans(path: Path) -> list[dict[str, Any]]:
    """The spans written to ``path`` so far."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# The web process's side: its own provider (never the global one, which the rest of the suite
# leaves alone) and the SDK's in-memory exporter.
REQUEST_SPANS = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(REQUEST_SPANS))
request_tracer = _provider.get_tracer("tests.request")


class TracingMiddleware:
    """Run each request in a SERVER span, as opentelemetry-instrumentation-django does."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with request_tracer.start_as_current_span(
            f"{request.method} {request.path}", kind=trace.SpanKind.SERVER
        ):
            return self.get_response(request)
