"""The invocation of one job in this process: call its function, turn what happened into a reply.

A worker's child calls ``run_job()`` for each job it is sent; ``django_jobs.testing`` calls it to
run jobs inside a test. The reply is a JSON-able dict that ``lifecycle.Ended.from_reply`` reads.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from asgiref.sync import async_to_sync
from django.db import close_old_connections, connections

from .. import tracing
from ..context import JobContext, _current, worker_shutdown
from ..exceptions import Retry, StopJob
from ..lifecycle import ErrorRecord
from ..log import log_event
from ..payload import storable_result
from ..registry import registry
from ..text import storable

# The pid of this process when it is a worker's child (set by become_child(), None elsewhere). A
# job that calls os.fork() and lets the copy return would otherwise have two processes run the
# child's loop: the copy must not reply, read the socket or close the child's database connections.
_child_pid: int | None = None


#: What to return instead of a value JSON can't hold (in the warning of a result not stored).
RESULT_HINT = (
    "Return plain JSON types (str, int, float, bool, None, list, dict with str keys), "
    "e.g. value.isoformat() for a datetime."
)

#: The history's reason for a job that returned after learning its worker was shutting down.
WRAPPED_UP = "returned after stop_requested said the worker was shutting down"


def become_child() -> int:
    """Note that this process is a worker's child (see _child_pid); return its pid."""
    global _child_pid
    _child_pid = os.getpid()
    return _child_pid


def error_info(exc: BaseException) -> dict[str, str]:
    """The stored form of an exception: class path, message and traceback."""
    return ErrorRecord.from_exception(exc).as_dict()


def run_job(
    message: dict[str, Any], worker_id: str, *, close_connections: bool = True, check_before: bool = True
) -> dict[str, Any]:
    """Run one claimed job in this process and describe its outcome as a JSON-able dict.

    ``close_connections=False`` leaves database connections alone, for django_jobs.testing,
    which runs jobs inside a test's transaction (closing its connection would end the test's).
    ``check_before=False`` skips the checks a child makes once per batch, for a job that follows
    another at once: of old connections before the job (the check after that one just ran), and
    of whether a tracer provider was set since.

    With opentelemetry installed the attempt runs in its span (tracing.py).
    """
    if tracing.ENABLED:
        return tracing.run_in_span(
            message, worker_id, lambda: _run_job(message, worker_id, close_connections, check_before),
            look=check_before,
        )
    return _run_job(message, worker_id, close_connections, check_before)


def _run_job(message: dict[str, Any], worker_id: str, close_connections: bool, check_before: bool) -> dict[str, Any]:
    definition = registry.get(message["name"])
    if definition is None:  # the parent checks first; this guards against a stale registry
        return {"outcome": "failed", "retryable": False, "error": {
            "class": "django_jobs.exceptions.JobNotRegistered",
            "message": f"no job named {message['name']!r} is registered", "traceback": ""}}
    args, kwargs = message["args"], message["kwargs"]
    if not (isinstance(args, list) and isinstance(kwargs, dict)):
        # Only a row written around enqueue() gets here; *"abc" would call the job with 'a', 'b',
        # 'c', and no later attempt would do better.
        return {"outcome": "failed", "retryable": False, "error": {
            "class": "django_jobs.exceptions.InvalidPayload",
            "message": f"the row's args must be a JSON array and its kwargs a JSON object, not "
                       f"{type(args).__name__} {storable(repr(args)[:200])} and "
                       f"{type(kwargs).__name__} {storable(repr(kwargs)[:200])}; the job wasn't run",
            "traceback": ""}}
    context = JobContext(
        id=message["id"],
        name=message["name"],
        attempt=message["attempt"],
        max_attempts=message["max_attempts"],
        queue=message["queue"],
        worker_id=worker_id,
        using=message["using"],
    )
    token = _current.set(context)
    if close_connections and check_before:
        close_old_connections()
    worker_shutdown.seen = False
    try:
        if definition.is_async:
            # On a new event loop; Django's thread-sensitive sync_to_async() calls come back to
            # this thread, so the job's ORM calls use this child's connections, closed below.
            value = async_to_sync(definition.func)(*message["args"], **message["kwargs"])
        else:
            value = definition.func(*message["args"], **message["kwargs"])
        if worker_shutdown.seen:
            # stop_requested told it the worker is shutting down, and it returned: it wrapped up
            # (checkpointed), it didn't finish. Queued again, it goes on from there elsewhere.
            return {"outcome": "handed_back", "reason": WRAPPED_UP}
        # The job's work is done: what it returned can never make it fail (a retry would do the
        # work again). A value JSON can't hold is dropped, and said so.
        value, problem = storable_result(value)
        if problem:
            warning = f"{problem}; the job succeeded but its result wasn't stored. {RESULT_HINT}"
            log_event("result_unstorable", logging.WARNING, job=message["id"], name=message["name"],
                      attempt=message["attempt"], note=warning)
            return {"outcome": "succeeded", "result": None, "unstorable": warning}
        return {"outcome": "succeeded", "result": value}
    except Retry as exc:
        if exc.at is not None:
            return {"outcome": "retry", "at": exc.at.isoformat()}
        return {"outcome": "retry", "delay": exc.delay.total_seconds() if exc.delay else 0.0}
    except StopJob as exc:
        return {"outcome": "stopped", "reason": exc.reason}
    except BaseException as exc:  # noqa: BLE001 - a job's failure is data, never a crash
        retryable = not isinstance(exc, definition.dont_retry)
        return {"outcome": "failed", "retryable": retryable, "error": error_info(exc)}
    finally:
        if _child_pid is not None and os.getpid() != _child_pid:
            os._exit(0)  # a copy the job forked, returning from the job: see _child_pid
        _current.reset(token)
        if close_connections:
            _close_old_connections(message)


def _close_old_connections(message: dict[str, Any]) -> None:
    """close_old_connections(), after ending any transaction the job left open.

    A job that entered ``atomic()`` without leaving it (or turned autocommit off) would leave its
    connection inside a transaction, and every later job of this child would fail on it. Its
    uncommitted writes are rolled back: closing the connection ends the transaction.
    """
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block or conn.closed_in_transaction or (
            conn.connection is not None and conn.autocommit != conn.settings_dict["AUTOCOMMIT"]
        ):
            log_event(
                "transaction_left_open", logging.WARNING, job=message["id"], name=message["name"],
                attempt=message["attempt"], database=conn.alias,
                note="the job returned inside a transaction; its uncommitted writes were rolled back",
            )
            # What connect() resets, so the next job starts outside any atomic block.
            conn.in_atomic_block = conn.needs_rollback = conn.closed_in_transaction = False
            conn.savepoint_ids, conn.atomic_blocks, conn.commit_on_exit = [], [], True
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection is dropped all the same
                conn.connection = None
            continue
        conn.close_if_unusable_or_obsolete()
