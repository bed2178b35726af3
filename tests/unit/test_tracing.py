"""django_jobs/tracing.py: the trace context an enqueue stores, and the span it becomes (no database)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from django_jobs import tracing

JOB = {"id": 7, "name": "tests.add", "queue": "emails", "attempt": 2, "max_attempts": 3}


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Spans of a provider of this test's own (the global one is set once per process)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("tests"))
    return exporter


def test_trace_context__is_none_without_a_current_span() -> None:
    assert tracing.trace_context() == (None, None)


def test_trace_context__is_the_current_spans_w3c_traceparent(exporter: InMemorySpanExporter) -> None:
    with tracing._get_tracer().start_as_current_span("request") as span:
        traceparent, tracestate = tracing.trace_context()

    context = span.get_span_context()
    assert traceparent is not None
    version, trace_id, span_id, _flags = traceparent.split("-")
    assert (version, trace_id, span_id) == ("00", f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert tracestate is None


def test_run_in_span__is_a_consumer_span_child_of_the_stored_context(exporter: InMemorySpanExporter) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    job = {**JOB, "traceparent": traceparent, "tracestate": "vendor=x"}

    reply = tracing.run_in_span(job, "host:1", lambda: {"outcome": "retry", "delay": 1.0})

    assert reply == {"outcome": "retry", "delay": 1.0}
    (span,) = exporter.get_finished_spans()
    assert (span.name, span.kind, span.status.status_code) == ("process tests.add", SpanKind.CONSUMER, StatusCode.UNSET)
    assert span.parent is not None
    assert (f"{span.parent.trace_id:032x}", f"{span.parent.span_id:016x}") == (
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert span.context is not None and span.context.trace_state.get("vendor") == "x"
    assert dict(span.attributes or {})["django_jobs.job.outcome"] == "retry"


def test_run_in_span__without_a_stored_context_starts_a_trace(exporter: InMemorySpanExporter) -> None:
    tracing.run_in_span(dict(JOB), "host:1", lambda: {"outcome": "succeeded"})

    (span,) = exporter.get_finished_spans()
    assert span.parent is None and list(span.links) == []


@pytest.mark.parametrize(("reply", "status", "error_type"), [
    ({"outcome": "failed", "error": {"class": "builtins.KeyError", "message": "'x'", "traceback": "tb"}},
     StatusCode.ERROR, "builtins.KeyError"),
    ({"outcome": "stopped", "reason": "by the job"}, StatusCode.UNSET, None),
    ({"outcome": "handed_back"}, StatusCode.UNSET, None),
])
def test_run_in_span__marks_failures_as_errors(
    exporter: InMemorySpanExporter, reply: dict[str, Any], status: StatusCode, error_type: str | None
) -> None:
    tracing.run_in_span(dict(JOB), "host:1", lambda: reply)

    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == status
    assert dict(span.attributes or {}).get("error.type") == error_type
    assert [e.name for e in span.events] == (["exception"] if error_type else [])


def test_run_in_span__without_a_tracer_provider_makes_no_span_and_keeps_the_context_current(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The API installed, no provider set (the SDK not set up): every span would be a no-op, so none
    # is made (a fifth of a child's time per short job), but the stored context is still current
    # while the job runs: what the job enqueues continues the trace, as under a no-op span.
    from opentelemetry import trace

    monkeypatch.setattr(tracing, "_tracer", None)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)

    def no_span(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a span was started")

    monkeypatch.setattr(trace.ProxyTracer, "start_as_current_span", no_span)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    seen: list[Any] = []

    reply = tracing.run_in_span({**JOB, "traceparent": traceparent}, "host:1",
                                lambda: seen.append(tracing.trace_context()) or {"outcome": "succeeded"})

    assert reply == {"outcome": "succeeded"}
    assert seen == [(traceparent, None)]
    assert tracing.trace_context() == (None, None)  # and no longer once it returned
    assert tracing.run_in_span(dict(JOB), "host:1", lambda: {"outcome": "succeeded"}) == {"outcome": "succeeded"}


def test_run_in_span__without_look_takes_what_the_last_look_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # A child asks whether a provider is set once per batch (look=True for its first job): the
    # jobs after it reuse that answer, and the next batch's first job sees a provider set since.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", None)
    monkeypatch.setattr(tracing, "_found", None)
    tracing.run_in_span(dict(JOB), "host:1", lambda: {"outcome": "succeeded"})  # no provider: no span

    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("tests"))  # a provider, set meanwhile
    tracing.run_in_span(dict(JOB), "host:1", lambda: {"outcome": "succeeded"}, look=False)
    assert exporter.get_finished_spans() == ()
    tracing.run_in_span(dict(JOB), "host:1", lambda: {"outcome": "succeeded"}, look=True)
    tracing.run_in_span(dict(JOB), "host:1", lambda: {"outcome": "succeeded"}, look=False)
    assert [s.name for s in exporter.get_finished_spans()] == ["process tests.add"] * 2
