"""Child processes that run job functions, one job at a time each.

Jobs run in children, not threads, so the worker can kill one that is stuck in ``time.sleep``, a
socket read or a C call when its timeout passes, without touching the jobs of other children.

Parent and child talk over a socket pair in JSON lines (never pickle): the parent sends a batch
of jobs as one line, ``{"using": …, "jobs": [...]}``; the child runs them in order and answers
each with a line of its own as soon as it is done. Short jobs travel several to a batch, so a
child runs them back to back instead of waiting for the parent between jobs, and the parent reads
whatever replies have arrived in one system call. Each reply carries the child's monotonic clock
at the end of the job (CLOCK_MONOTONIC is system-wide on Linux): the next job of the batch started
then, which is what the parent's timeout for it counts from.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import close_old_connections, connections

from .context import JobContext, _current
from .exceptions import Retry, StopJob
from .log import log_event
from .payload import json_problem
from .registry import registry
from .lifecycle import ErrorRecord
from .text import storable

_FORK = multiprocessing.get_context("fork")

# File descriptors of the parent's ends of every child's socket (and of its pidfd). A forked child
# inherits them all and must close them: while any copy of a socket's parent end is open, the child
# never sees EOF, so a child would outlive a worker killed with SIGKILL instead of exiting.
_PARENT_ENDS: set[int] = set()
# The pid of this process when it is a worker's child (set by _child_main, None elsewhere). A job
# that calls os.fork() and lets the copy return would otherwise have two processes run the child's
# loop: the copy must not reply, read the socket or close the child's database connections.
_child_pid: int | None = None
# The most children one worker may run (``runjobs --concurrency``). Each child is a forked Python
# process with its own database connection, and each costs the worker three file descriptors; a
# host needing more runs more workers.
MAX_CONCURRENCY = 256
# The most arguments a batch line may carry, in bytes of JSON (each job's may be up to
# MAX_PAYLOAD_BYTES; a job over this goes alone).
BATCH_BYTES = 1 << 20


def error_info(exc: BaseException) -> dict[str, str]:
    """The stored form of an exception: class path, message and traceback."""
    return ErrorRecord.from_exception(exc).as_dict()


def run_job(
    message: dict[str, Any], worker_id: str, *, close_connections: bool = True, check_before: bool = True
) -> dict[str, Any]:
    """Run one claimed job in this process and describe its outcome as a JSON-able dict.

    ``close_connections=False`` leaves database connections alone, for django_jobs.testing,
    which runs jobs inside a test's transaction (closing its connection would end the test's).
    ``check_before=False`` skips the check of old connections before the job, for a job that
    follows another at once (the check after that one just ran).
    """
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


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this child if the worker dies, even mid-job (best effort elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the child still exits at EOF once its current job returns
    # The parent died before prctl took effect: we were re-parented. Compare with the pid the
    # worker had when it forked us, never with 1: a worker that is PID 1 (a container's exec-form
    # command) is a live parent whose pid is 1.
    if os.getppid() != parent_pid:
        os._exit(0)


def _child_main(sock: socket.socket, worker_id: str, parent_pid: int) -> None:
    global _child_pid
    _child_pid = pid = os.getpid()
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
    _die_with_parent(parent_pid)
    received = bytearray()
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except OSError:
            return
        if not chunk:
            return  # EOF: the worker closed its end (shutdown) or died
        received += chunk
        if b"\n" not in chunk:
            continue  # a long line arriving in pieces
        while b"\n" in received:
            end = received.index(b"\n")
            batch = json.loads(received[:end])
            del received[: end + 1]
            using = batch["using"]
            for position, message in enumerate(batch["jobs"]):
                message["using"] = using
                began = time.monotonic()
                reply = run_job(message, worker_id, check_before=position == 0)
                ended = time.monotonic()
                # The parent matches a reply to its job by id and attempt, from this pid only.
                reply["id"], reply["a"], reply["pid"] = message["id"], message["attempt"], pid
                reply["t"], reply["d"] = ended, ended - began
                try:
                    sock.sendall(json.dumps(reply).encode() + b"\n")
                except OSError:
                    return


@functools.lru_cache(maxsize=1024)
def _quoted(text: str) -> str:
    """A string as JSON (job names, queues and aliases repeat: each is encoded once)."""
    return json.dumps(text)


def _one_line(text: str) -> str:
    # PostgreSQL's jsonb output never spans lines, but a row written by hand into SQLite (the demo)
    # might: re-encode it compactly rather than break the line framing.
    return json.dumps(json.loads(text)) if "\n" in text else text


def _encode_job(job: dict[str, Any]) -> str:
    """The message for one claimed row: what run_job() reads, with the arguments as stored."""
    return (
        f'{{"id":{int(job["id"])},"name":{_quoted(job["name"])},"queue":{_quoted(job["queue"])},'
        f'"attempt":{int(job["attempt"])},"max_attempts":{int(job["max_attempts"])},'
        f'"args":{_one_line(job["args_json"])},"kwargs":{_one_line(job["kwargs_json"])}}}'
    )


class ChildStartFailed(RuntimeError):
    """The worker couldn't start a child process (out of file descriptors, processes or memory)."""


@dataclass
class Slot:
    """One child process and the jobs handed to it, seen from the worker's main process.

    ``jobs`` holds what the child was sent and hasn't answered, in order: the first is running,
    the others wait in the child behind it.
    """

    index: int
    worker_id: str
    process: Any = None
    pid: int | None = None  # the child's; a reply from any other process is refused
    pidfd: int | None = None  # readable once the child has exited (Linux), see exit_fd
    conn: socket.socket | None = None
    jobs: deque[dict[str, Any]] = field(default_factory=deque)
    started: float = 0.0  # monotonic time the running job started (as far as the parent knows)
    started_at: datetime | None = None  # the same moment on the worker's clock
    deadline: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    received: bytearray = field(default_factory=bytearray)

    @property
    def job(self) -> dict[str, Any] | None:
        """The job running in the child, if any."""
        return self.jobs[0] if self.jobs else None

    @property
    def busy(self) -> bool:
        return bool(self.jobs)

    def start(self) -> None:
        """Fork a new child for this slot; ChildStartFailed says why it couldn't."""
        try:
            parent_end, child_end = socket.socketpair()
        except OSError as exc:
            raise ChildStartFailed(self._start_problem(exc)) from exc
        process = _FORK.Process(
            target=_child_main,
            args=(child_end, self.worker_id, os.getpid()),
            name=f"django_jobs-{self.worker_id}-{self.index}",
            daemon=True,
        )
        _PARENT_ENDS.add(parent_end.fileno())
        try:
            process.start()
        except OSError as exc:
            _PARENT_ENDS.discard(parent_end.fileno())
            parent_end.close()
            raise ChildStartFailed(self._start_problem(exc)) from exc
        finally:
            child_end.close()
        assert process.pid is not None
        self.process, self.pid, self.conn, self.received = process, process.pid, parent_end, bytearray()
        try:
            self.pidfd = os.pidfd_open(process.pid)
            _PARENT_ENDS.add(self.pidfd)
        except (AttributeError, OSError):  # not Linux 5.3+: the sentinel is the next best thing
            self.pidfd = None

    def _start_problem(self, exc: OSError) -> str:
        try:
            import resource

            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            limit = f" (the open-file limit, ulimit -n, is {soft})"
        except (ImportError, OSError, ValueError):
            limit = ""
        return (
            f"could not start child process {self.index + 1}: {exc}. Each child needs three file "
            f"descriptors and a process{limit}: raise the limits or lower --concurrency."
        )

    @property
    def exit_fd(self) -> int | None:
        """A descriptor that becomes readable once the child has exited.

        Neither its socket nor multiprocessing's sentinel pipe will do: a process the job forked
        inherits both and keeps them open after the child dies. A pidfd is about the process.
        """
        if self.pidfd is not None:
            return self.pidfd
        return self.process.sentinel if self.process is not None else None

    def send(self, jobs: list[dict[str, Any]], using: str, now: datetime) -> None:
        """Hand ``jobs`` (claimed rows) to the idle child in one message; the first starts now."""
        assert self.conn is not None and not self.jobs
        encoded = ",".join(map(_encode_job, jobs))
        self.conn.sendall(f'{{"using":{_quoted(using)},"jobs":[{encoded}]}}\n'.encode())
        self.jobs.extend(jobs)
        self._running_from(time.monotonic(), now)

    def _running_from(self, monotonic: float, now: datetime) -> None:
        self.started, self.started_at = monotonic, now
        self.extra.clear()
        job = self.job
        timeout = job.get("timeout") if job is not None else None
        self.deadline = monotonic + timeout if timeout else None

    def receive(self, block: bool = True) -> tuple[list[dict[str, Any]], bool]:
        """The replies the child has sent so far ([] if none is whole yet), and whether its
        socket has closed (the child died): replies it sent before dying still count.

        Reads everything available; ``block=False`` returns at once when nothing is.
        """
        assert self.conn is not None
        got_line = closed = False
        flags = 0 if block else socket.MSG_DONTWAIT
        while True:
            try:
                chunk = self.conn.recv(1 << 18, flags)
            except BlockingIOError:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            self.received += chunk
            got_line = got_line or b"\n" in chunk
            flags = socket.MSG_DONTWAIT  # after the first read, only what is already there
        if not got_line:
            return [], closed
        end = self.received.rindex(b"\n")
        complete = bytes(self.received[:end])
        del self.received[: end + 1]
        try:
            # One parse for every reply that came in: b"[r1,r2,…]".
            return json.loads(b"[" + complete.replace(b"\n", b",") + b"]"), closed
        except ValueError:
            pass
        # Something other than the child wrote to its socket (a process the job forked): keep
        # the lines that parse, and let the worker refuse those that aren't the child's replies.
        replies = []
        for line in complete.split(b"\n"):
            try:
                reply = json.loads(line)
            except ValueError:
                reply = None
            if isinstance(reply, dict):
                replies.append(reply)
            else:
                log_event("reply_refused", logging.ERROR, worker=self.worker_id, child=self.pid,
                          note="a line on the child's socket that isn't a reply", line=repr(line[:100]))
        return replies, closed

    def finished(self, reply: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
        """Take the running job off the slot after ``reply``; the next one (if any) started when
        the child sent it (its clock ``t``), which may be a little before ``now``."""
        job = self.jobs.popleft()
        monotonic = time.monotonic()
        ended = min(reply["t"], monotonic) if reply and "t" in reply else monotonic
        self._running_from(ended, now - timedelta(seconds=monotonic - ended))
        return job

    def take_waiting(self) -> list[dict[str, Any]]:
        """Remove and return the jobs the child was sent but hadn't started."""
        waiting = list(self.jobs)[1:]
        while len(self.jobs) > 1:
            self.jobs.pop()
        return waiting

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
        if self.pidfd is not None:
            _PARENT_ENDS.discard(self.pidfd)
            os.close(self.pidfd)
        self.process, self.pid, self.pidfd, self.conn, self.received = None, None, None, None, bytearray()

    def exit_description(self) -> str:
        code = self.process.exitcode if self.process is not None else None
        if code is None:
            return "the process running it stopped answering"
        if code < 0:
            return f"the process running it was killed by signal {signal.Signals(-code).name}"
        return f"the process running it exited with code {code}"
