"""OpenTelemetry traces from the request that enqueues a job to each attempt at it.

The only module that imports ``opentelemetry``, and only when it is installed (the ``otel``
extra: ``pip install "django-jobs[otel]"``). Without it ``ENABLED`` is False, and the callers'
``if tracing.ENABLED`` is all the enqueue and the worker pay. With it, and no span recording,
an enqueue pays one lookup of the current span, and an attempt, while no tracer provider is set,
no span at all (``_recording_tracer()``, asked once per batch a child is sent).

- ``enqueue()`` stores the current span's W3C ``traceparent`` and ``tracestate`` on the row
  (``trace_context()``); nothing when no span is current.
- Each attempt runs in a CONSUMER span whose parent is that context (``run_in_span()``), in the
  child that runs the job, so spans the job makes are its children. An attempt whose child is
  killed (timeout, stop grace) or dies gets its span from the worker instead (``record_ended()``).

Only the W3C format is stored, whatever propagators the project configured for HTTP: the row is
ours, and one fixed format keeps it readable by any later version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the otel extra isn't installed: no tracing, and nothing else to import
    ENABLED = False
else:
    ENABLED = True
    _PROPAGATOR = TraceContextTextMapPropagator()

#: The row's columns when there is no trace to continue.
NO_CONTEXT: tuple[str | None, str | None] = (None, None)

#: ``messaging.system``: what the messaging semantic conventions call the queue's product.
SYSTEM = "django_jobs"

# Outcomes (lifecycle.Happened values) that are errors on the span.
_ERRORS = frozenset({"failed", "timeout", "lost", "unregistered"})

_tracer: Any = None


def _get_tracer() -> Any:
    # Until the project sets a tracer provider this is a proxy that forwards to it once set, so
    # it can be kept from the first call on.
    global _tracer
    if _tracer is None:
        from . import __version__

        _tracer = trace.get_tracer("django_jobs", __version__)
    return _tracer


def trace_context() -> tuple[str | None, str | None]:
    """The current span's W3C ``traceparent`` and ``tracestate`` (None, None without one)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return NO_CONTEXT
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate") or None


def _attributes(job: dict[str, Any], worker_id: str) -> dict[str, Any]:
    """The span's attributes: the messaging conventions', then ours (``django_jobs.*``)."""
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": job["queue"],
        "messaging.message.id": str(job["id"]),
        "django_jobs.job.id": job["id"],
        "django_jobs.job.name": job["name"],
        "django_jobs.job.queue": job["queue"],
        "django_jobs.job.attempt": job["attempt"],
        "django_jobs.job.max_attempts": job["max_attempts"],
        "django_jobs.worker.id": worker_id,
    }


def _parent(job: dict[str, Any]) -> Any:
    """The stored context as an OpenTelemetry Context, or None (the span starts a trace)."""
    traceparent = job.get("traceparent")
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if job.get("tracestate"):
        carrier["tracestate"] = job["tracestate"]
    return _PROPAGATOR.extract(carrier)


def _links(parent: Any) -> list[Any]:
    # Every attempt is a child of the enqueue's span, and links to it too, as the messaging
    # conventions ask of a "process" span (a link to the message's creation context): a backend
    # that follows links, or a trace whose parent a sampler dropped, still leads to the enqueue.
    if parent is None:
        return []
    context = trace.get_current_span(parent).get_span_context()
    return [Link(context, {"django_jobs.link": "enqueued_by"})] if context.is_valid else []


def _end_with(span: Any, reply: dict[str, Any]) -> None:
    """Set what ended the attempt on ``span``: the outcome, and the error if it is one."""
    outcome = reply.get("outcome", "")
    span.set_attribute("django_jobs.job.outcome", outcome)
    if outcome not in _ERRORS:
        return
    error = reply.get("error") or {}
    error_class = error.get("class") or outcome
    message = error.get("message") or ""
    span.set_attribute("error.type", error_class)
    # What Span.record_exception() writes, from the stored error: the exception object stayed in
    # the child (and a killed child never had one).
    span.add_event("exception", {
        "exception.type": error_class,
        "exception.message": message,
        "exception.stacktrace": error.get("traceback") or "",
    })
    span.set_status(Status(StatusCode.ERROR, f"{error_class}: {message}" if message else error_class))


def _recording_tracer() -> Any:
    """The tracer, or None while no tracer provider is set (every span would be a no-op)."""
    tracer = _get_tracer()
    if isinstance(tracer, trace.NoOpTracer) or (
        isinstance(tracer, trace.ProxyTracer) and isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    ):
        return None
    return tracer


# What the last run_in_span() that looked found: the tracer, or None (no provider set).
_found: Any = None


def run_in_span(
    job: dict[str, Any], worker_id: str, run: Callable[[], dict[str, Any]], *, look: bool = True
) -> dict[str, Any]:
    """Call ``run`` (one attempt at ``job``, returning its reply) inside the attempt's span.

    ``look=False`` takes the tracer the last call found instead of asking the API again whether
    a provider is set: a child asks once per batch (~2 µs a job, a tenth of a no-op job's time
    in its child).
    """
    global _found
    if look:
        _found = _recording_tracer()
    parent, tracer = _parent(job), _found
    if tracer is None:
        # The API without a provider (the extra installed, the SDK not set up): no span to make,
        # which was a fifth of a child's time per no-op job. The stored context is still the
        # current one while the job runs, as under a no-op span, so what it enqueues carries it.
        if parent is None:
            return run()
        token = otel_context.attach(parent)
        try:
            return run()
        finally:
            otel_context.detach(token)
    with tracer.start_as_current_span(
        f"process {job['name']}", context=parent, kind=SpanKind.CONSUMER,
        attributes=_attributes(job, worker_id), links=_links(parent),
        record_exception=False, set_status_on_exception=False,
    ) as span:
        reply = run()
        _end_with(span, reply)
    return reply


def record_ended(job: dict[str, Any], worker_id: str, reply: dict[str, Any], started_at: datetime | None) -> None:
    """Record the span of an attempt whose child didn't end it (killed or dead), after the fact."""
    start = int(started_at.timestamp() * 1e9) if started_at is not None else None
    parent = _parent(job)
    span = _get_tracer().start_span(
        f"process {job['name']}", context=parent, kind=SpanKind.CONSUMER,
        attributes=_attributes(job, worker_id), links=_links(parent), start_time=start,
    )
    _end_with(span, reply)
    span.end(end_time=time.time_ns())


def flush(timeout_millis: int = 5000) -> None:
    """Export the spans a batching processor still holds, before this process exits."""
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_millis)
