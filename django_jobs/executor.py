"""Child processes that run job functions, one job at a time each.

Jobs run in children, not threads, so the worker can kill one that is stuck in ``time.sleep``, a
socket read or a C call when its timeout passes, without touching the jobs of other children.
Parent and child exchange JSON messages over a pipe (never pickle).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from django.db import close_old_connections, connections

from .context import JobContext, _current
from .exceptions import Retry, StopJob
from .payload import json_problem
from .registry import registry

_FORK = multiprocessing.get_context("fork")

# File descriptors of the parent's ends of every child's pipe. A forked child inherits them all
# and must close them: while any copy of a pipe's parent end is open, the child never sees EOF,
# so a child would outlive a worker killed with SIGKILL instead of exiting.
_PARENT_ENDS: set[int] = set()


def _storable(text: str) -> str:
    # PostgreSQL text and jsonb can't hold NUL; an error message must never fail its own write.
    return text.replace("\x00", "\\x00")


def error_info(exc: BaseException) -> dict[str, str]:
    """The stored form of an exception: class path, message and traceback."""
    cls = type(exc)
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the failure
        message = f"<{cls.__name__}: str() failed>"
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "message": _storable(message),
        "traceback": _storable("".join(traceback.format_exception(exc))),
    }


def run_job(
    message: dict[str, Any], worker_id: str, *, close_connections: bool = True
) -> dict[str, Any]:
    """Run one claimed job in this process and describe its outcome as a JSON-able dict.

    ``close_connections=False`` leaves database connections alone, for django_jobs.testing,
    which runs jobs inside a test's transaction (closing its connection would end the test's).
    """
    definition = registry.get(message["name"])
    if definition is None:  # the parent checks first; this guards against a stale registry
        return {"outcome": "failed", "retryable": False, "error": {
            "class": "django_jobs.exceptions.JobNotRegistered",
            "message": f"no job named {message['name']!r} is registered", "traceback": ""}}
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
    if close_connections:
        close_old_connections()
    try:
        value = definition.func(*message["args"], **message["kwargs"])
        problem = json_problem(value, "the return value")
        if problem:
            return {"outcome": "failed", "retryable": False, "error": {
                "class": "django_jobs.exceptions.ResultNotJSON",
                "message": f"{problem}; return plain JSON types (str, int, float, bool, None, "
                           f"list, dict with str keys)",
                "traceback": ""}}
        return {"outcome": "succeeded", "result": value}
    except Retry as exc:
        if exc.at is not None:
            return {"outcome": "retry", "at": exc.at.isoformat()}
        return {"outcome": "retry", "delay": exc.in_.total_seconds() if exc.in_ else 0.0}
    except StopJob as exc:
        return {"outcome": "stopped", "reason": exc.reason}
    except BaseException as exc:  # noqa: BLE001 - a job's failure is data, never a crash
        retryable = not isinstance(exc, definition.dont_retry)
        return {"outcome": "failed", "retryable": retryable, "error": error_info(exc)}
    finally:
        _current.reset(token)
        if close_connections:
            close_old_connections()


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this child if the worker dies, even mid-job (best effort elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the child still exits at EOF once its current job returns
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(0)


def _child_main(conn: Connection, worker_id: str) -> None:
    for fd in list(_PARENT_ENDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _PARENT_ENDS.clear()
    # Connections inherited from the parent share its sockets: forget them without closing
    # (psycopg never sends a terminate message from a forked child), and open our own.
    for wrapper in connections.all(initialized_only=True):
        wrapper.connection = None
    # The parent owns shutdown: Ctrl-C in a terminal, or systemd's SIGTERM to the whole control
    # group, reaches every process, and the parent decides whether running jobs get their grace
    # period (it kills children with SIGKILL when they don't).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        message = json.loads(raw)
        reply = run_job(message, worker_id)
        reply["id"] = message["id"]
        try:
            conn.send_bytes(json.dumps(reply).encode())
        except (BrokenPipeError, OSError):
            return


@dataclass
class Slot:
    """One child process and the job it is running, seen from the worker's main process."""

    index: int
    worker_id: str
    process: Any = None
    conn: Connection | None = None
    job: dict[str, Any] | None = None
    started: float = 0.0  # monotonic time the job was handed over
    deadline: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        return self.job is not None

    def start(self) -> None:
        parent_end, child_end = _FORK.Pipe()
        process = _FORK.Process(
            target=_child_main,
            args=(child_end, self.worker_id),
            name=f"django_jobs-{self.worker_id}-{self.index}",
            daemon=True,
        )
        _PARENT_ENDS.add(parent_end.fileno())
        process.start()
        child_end.close()
        self.process, self.conn = process, parent_end

    def send(self, job: dict[str, Any], using: str) -> None:
        assert self.conn is not None
        self.job = job
        self.started = time.monotonic()
        timeout = job.get("timeout")
        self.deadline = self.started + timeout if timeout else None
        self.conn.send_bytes(json.dumps({**job, "using": using}).encode())

    def receive(self) -> dict[str, Any] | None:
        """The child's reply, or None when the child died."""
        assert self.conn is not None
        try:
            return json.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            return None

    def done(self) -> None:
        self.job = None
        self.deadline = None
        self.extra.clear()

    def kill(self) -> None:
        """Kill the child at once (a timeout, a stop, a forced shutdown); start() makes a new one."""
        if self.process is not None and self.process.is_alive():
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            _PARENT_ENDS.discard(self.conn.fileno())
            self.conn.close()
        if self.process is not None:
            self.process.join(timeout=5)
        self.process, self.conn = None, None

    def exit_description(self) -> str:
        code = self.process.exitcode if self.process is not None else None
        if code is None:
            return "the process running it stopped answering"
        if code < 0:
            return f"the process running it was killed by signal {signal.Signals(-code).name}"
        return f"the process running it exited with code {code}"
