"""The pool: a worker's child processes, the jobs handed to them, their replies and deadlines.

Each ``Slot`` is one child seen from the worker's main process. The ``Pool`` hands buffered jobs
to idle children, reads their replies into the ledger's pending outcomes, kills a child whose job
ran past its timeout or stop grace, and starts a new child in place of one that died.
"""

from __future__ import annotations

import functools
import logging
import os
import select
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing import get_context
from typing import Any

from .. import tracing
from ..conf import jobs_settings
from ..lifecycle import ErrorRecord
from ..log import log_event
from ..models import Job
from ..services import ServiceContext
from ..signals import job_started
from . import protocol
from .child import PARENT_ENDS, child_main
from .claim_ahead import ClaimAhead
from .forkserver import ForkServer, ForkServerGone, ServedChild
from .forkserver import available as fork_server_available
from .ledger import Ledger, Outcome, last_attempt, send_signals
from .shutdown import ShutdownFlag

# Without a fork server (not Linux, or a slot started on its own in a test): fork from here.
_FORK = get_context("fork")

# The most children one worker may run (``runjobs --concurrency``). Each child is a forked Python
# process with its own database connection, and each costs the worker three file descriptors; a
# host needing more runs more workers.
MAX_CONCURRENCY = 256


class ChildStartFailed(RuntimeError):
    """The worker couldn't start a child process (out of file descriptors, processes or memory)."""


def _failure(outcome: str, error_class: str, message: str) -> dict[str, Any]:
    """A reply the worker makes up for an attempt whose child never answered."""
    return {"outcome": outcome, "retryable": True,
            "error": ErrorRecord.ours(error_class, message).as_dict()}


def _ready(waitables: list[Any], timeout: float) -> list[Any]:
    """The sockets and descriptors of ``waitables`` that are readable, have closed or failed,
    waiting at most ``timeout`` seconds for one.

    What multiprocessing.connection.wait() answers, with one poll() object per call and no
    selector: that built and registered a selector each time, ~14 µs against ~3 µs, and the loop
    waits after every batch of replies. (poll, not select: no limit on descriptor numbers.)
    """
    poller = select.poll()
    by_fd: dict[int, Any] = {}
    for item in waitables:
        fd = item if isinstance(item, int) else item.fileno()
        by_fd[fd] = item
        poller.register(fd, select.POLLIN)
    # (Hang-ups, errors and closed descriptors are reported whatever was asked for.)
    return [by_fd[fd] for fd, _events in poller.poll(max(0.0, timeout) * 1000)]


@functools.cache
def _receive_view() -> memoryview:
    """The buffer every slot's receive() reads into (the main thread alone reads replies).

    ``recv(256 KB)`` allocates that much for each call, past malloc's threshold for mapping pages
    from the kernel: a mmap and a munmap per read, ~20 µs against ~4 µs for reading into this,
    and the loop reads after every wake-up, including the read that finds nothing more.
    """
    return memoryview(bytearray(1 << 18))


@dataclass
class Slot:
    """One child process and the jobs handed to it, seen from the worker's main process.

    ``jobs`` holds what the child was sent and hasn't answered, in order: the first is running,
    the others wait in the child behind it.
    """

    index: int
    worker_id: str
    #: Where its children come from (the pool sets it); None: forked from this process.
    server: ForkServer | None = None
    #: The worker's shutdown flag, for a child forked from this process (the server has it).
    shutdown: ShutdownFlag | None = None
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
        """Start a new child for this slot; ChildStartFailed says why it couldn't."""
        try:
            parent_end, child_end = socket.socketpair()
        except OSError as exc:
            raise ChildStartFailed(self._start_problem(exc)) from exc
        PARENT_ENDS.add(parent_end.fileno())
        try:
            if self.server is not None:
                process: Any = self.server.spawn(child_end, self.index)
            else:
                process = _FORK.Process(
                    target=child_main,
                    args=(child_end, self.worker_id, os.getpid(), self.shutdown),
                    name=f"django_jobs-{self.worker_id}-{self.index}",
                    daemon=True,
                )
                process.start()
        except OSError as exc:
            PARENT_ENDS.discard(parent_end.fileno())
            parent_end.close()
            if isinstance(exc, ForkServerGone):
                raise ChildStartFailed(f"could not start child process {self.index + 1}: {exc}") from exc
            raise ChildStartFailed(self._start_problem(exc)) from exc
        finally:
            child_end.close()
        assert process.pid is not None
        self.process, self.pid, self.conn, self.received = process, process.pid, parent_end, bytearray()
        if isinstance(process, ServedChild):
            self.pidfd = process.pidfd
            return
        try:
            self.pidfd = os.pidfd_open(process.pid)
            PARENT_ENDS.add(self.pidfd)
        except (AttributeError, OSError):  # not Linux 5.3+: the sentinel is the next best thing
            self.pidfd = None

    def _start_problem(self, exc: OSError) -> str:
        try:
            import resource  # deferred: Unix only, and only needed to explain a failure

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
        self.conn.sendall(protocol.batch_line(jobs, using))
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
        closed = False
        flags = 0 if block else socket.MSG_DONTWAIT
        view = _receive_view()
        while True:
            try:
                size = self.conn.recv_into(view, 0, flags)
            except BlockingIOError:
                break
            except OSError:
                closed = True
                break
            if not size:
                closed = True
                break
            self.received += view[:size]
            flags = socket.MSG_DONTWAIT  # after the first read, only what is already there
        # (What is kept between reads is the part of a line after the last newline.)
        end = self.received.rfind(b"\n")
        if end < 0:
            return [], closed
        complete = bytes(self.received[:end])
        del self.received[: end + 1]
        return protocol.read_replies(complete, self.worker_id, self.pid), closed

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
            self.process.kill()
        self.close()

    def close(self) -> None:
        """Close the child's socket (at EOF it exits) and forget it, killing it if it hasn't
        exited within 5 seconds."""
        if self.conn is not None:
            PARENT_ENDS.discard(self.conn.fileno())
            self.conn.close()
        if self.process is not None:
            self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout=5)
        if isinstance(self.process, ServedChild):
            self.process.close()  # (its pidfd is the slot's)
        elif self.pidfd is not None:
            PARENT_ENDS.discard(self.pidfd)
            os.close(self.pidfd)
        self.process, self.pid, self.pidfd, self.conn, self.received = None, None, None, None, bytearray()

    def exit_description(self) -> str:
        code = self.process.exitcode if self.process is not None else None
        if code is None:
            return "the process running it stopped answering"
        if code < 0:
            return f"the process running it was killed by signal {signal.Signals(-code).name}"
        return f"the process running it exited with code {code}"


class Pool:
    """The worker's children: jobs go in from the ledger's buffer, outcomes out to its pending list."""

    def __init__(
        self, slots: list[Slot], *, context: ServiceContext, ledger: Ledger, claim_ahead: ClaimAhead,
        shutdown: ShutdownFlag | None = None,
    ) -> None:
        self.slots = slots
        self.shutdown_flag = shutdown
        self.server: ForkServer | None = None
        self.using, self.worker_id, self.clock = context.using, context.worker_id, context.clock
        self.ledger = ledger
        self.claim_ahead = claim_ahead
        #: Set once the worker shuts down: a child that dies then is not replaced.
        self.closing = False

    def start(self) -> None:
        """Start the fork server, then every child through it (before any thread starts)."""
        if fork_server_available():
            self.server = ForkServer(functools.partial(_served_child, self.worker_id, self.shutdown_flag))
            try:
                self.server.start()
            except OSError as exc:
                self.server = None
                raise ChildStartFailed(f"could not start the fork server: {exc}") from exc
        for slot in self.slots:
            slot.server, slot.shutdown = self.server, self.shutdown_flag
            slot.start()

    def reap_orphans(self) -> None:
        """Reap the processes orphaned here: a worker that is PID 1 (a container's exec-form
        command) inherits every orphan of its namespace, such as the process a job started
        before its child was killed, and an unreaped one stays ``<defunct>`` for good.

        Only with a fork server: then the server is this process's only child of its own, and
        its exit is watched through its pidfd, not its exit status.
        """
        if self.server is None:
            return
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def busy(self) -> bool:
        """Whether any child has a job."""
        return any(s.busy for s in self.slots)

    def idle(self) -> int:
        """How many children have no job."""
        return sum(1 for s in self.slots if not s.busy)

    def waiting(self) -> int:
        """How many jobs wait inside a child behind its running one."""
        return sum(max(0, len(s.jobs) - 1) for s in self.slots)

    def deadlines(self) -> list[float]:
        """The monotonic times at which a running job's timeout or stop grace runs out."""
        deadlines = [s.deadline for s in self.slots if s.deadline is not None]
        deadlines.extend(s.extra["stop_deadline"] for s in self.slots if "stop_deadline" in s.extra)
        return deadlines

    # -- jobs in --------------------------------------------------------------------------------

    def dispatch_buffer(self) -> None:
        """Hand buffered jobs to the idle children, several at a time while jobs are short.

        Only declared jobs go (see ledger.py): when an idle child waits for one that isn't yet,
        the ledger is told a round trip is due. A job on its last attempt goes alone.
        """
        ledger = self.ledger
        ledger.declare_ahead = self.claim_ahead.declare_ahead()
        idle = [s for s in self.slots if not s.busy]
        buffer = ledger.buffer
        if not idle or not buffer:
            return
        declared = ledger.declared
        size = self.claim_ahead.batch_size(len(idle), len(buffer))
        payload_bytes, batch_bytes = protocol.payload_bytes, protocol.BATCH_BYTES
        for slot in idle:
            if not buffer:
                return
            if buffer[0]["id"] not in declared:
                ledger.declare_due = ledger.may_declare(buffer[0])
                return
            batch = [buffer.popleft()]
            size_bytes = payload_bytes(batch[0])
            # A job a rate let start goes alone, and never waits in a child behind another: its
            # start was counted at its claim. So does a job on its last attempt (see last_attempt).
            alone = batch[0].get("rated") or last_attempt(batch[0])
            while buffer and len(batch) < size and not alone and not buffer[0].get("rated"):
                following = buffer[0]
                if following["id"] not in declared or last_attempt(following):
                    break
                size_bytes += payload_bytes(following)
                if size_bytes > batch_bytes:
                    break
                batch.append(buffer.popleft())
            self.dispatch(slot, batch)

    def dispatch(self, slot: Slot, rows: list[dict[str, Any]]) -> None:
        """Send ``rows`` to the idle ``slot``'s child (starting one if it has none)."""
        now = self.clock()
        try:
            if slot.conn is None:
                slot.start()  # its child exited while idle (see _child_exited)
            try:
                slot.send(rows, self.using, now)
            except OSError:
                # The child died while idle: replace it and hand the jobs to the new one.
                slot.close()
                slot.start()
                try:
                    slot.send(rows, self.using, now)
                except OSError as exc:
                    slot.kill()
                    raise ChildStartFailed(
                        f"child process {slot.index + 1} exited as soon as it started ({exc})"
                    ) from exc
        except ChildStartFailed:
            self.ledger.buffer.extendleft(reversed(rows))  # handed back at shutdown
            raise
        if job_started.has_listeners(Job):
            send_signals(job_started, ({"job_id": row["id"], "name": row["name"], "attempt": row["attempt"],
                                        "worker_id": self.worker_id} for row in rows))

    # -- replies out ----------------------------------------------------------------------------

    def wait(self, timeout: float, wake_fd: int) -> bool:
        """Block until a child replies or exits, ``wake_fd`` is readable (it is drained), or
        ``timeout`` seconds pass; record what the children sent. True when ``wake_fd`` woke it."""
        conns: list[Any] = [s.conn for s in self.slots if s.busy and s.conn is not None]
        # Every child's exit too: a child can die while a process it forked keeps its socket open,
        # and then only this tells.
        exits: dict[Any, Slot] = {s.exit_fd: s for s in self.slots if s.process is not None}
        ready = _ready(conns + list(exits) + [wake_fd], timeout)
        exited = []
        woken = False
        for item in ready:
            if item == wake_fd:
                woken = True
                try:
                    while os.read(wake_fd, 4096):
                        pass
                except BlockingIOError:
                    pass
                continue
            if item in exits:
                exited.append(exits[item])
                continue
            slot = next(s for s in self.slots if s.conn is item)
            self._collect(slot)
        for slot in exited:
            self._child_exited(slot)
        return woken

    def _collect(self, slot: Slot, block: bool = True) -> None:
        """Record the replies the slot's child has sent; if the child died, its job is lost."""
        replies, closed = slot.receive(block)
        self._take_replies(slot, replies)
        if closed:
            # Replies it sent before dying are taken above: only the job it was running is lost
            # (the ones behind it never started and go back to the buffer).
            assert slot.process is not None
            slot.process.join(timeout=5)
            if slot.job is None:
                slot.close()  # the next dispatch starts a new child (see _child_exited)
                return
            self._replace_child(slot, self._lost(slot))

    def _take_replies(self, slot: Slot, replies: list[dict[str, Any]]) -> None:
        for reply in replies:
            job = slot.job
            try:
                mine = job is not None and reply["pid"] == slot.pid and reply["id"] == job["id"] and (
                    reply["a"] == job["attempt"])
            except (KeyError, TypeError):  # not a reply
                mine = False
            if mine:
                self._finish(slot, reply)
                continue
            # Replies are the child's, for its running job, in order: anything else (a process the
            # job forked writing to the socket) must never become some job's outcome.
            log_event(
                "reply_refused", logging.ERROR, worker=self.worker_id, child=slot.pid,
                sender=reply.get("pid") if isinstance(reply, dict) else None,
                job=reply.get("id") if isinstance(reply, dict) else None,
                running=job["id"] if job is not None else None,
            )

    def _finish(self, slot: Slot, reply: dict[str, Any]) -> None:
        """Queue the outcome of the slot's running job for the next round trip to write."""
        assert slot.job is not None
        # The child measures its jobs; replies made up here (timeout, lost, handed back) last
        # from the job's start to now.
        duration = reply.pop("d", None)
        if duration is None:
            duration = time.monotonic() - slot.started
        self.claim_ahead.record(duration)
        now = self.clock()
        started_at = slot.started_at or now
        row = slot.finished(reply, now)
        self.ledger.pending.append(Outcome(row, reply, duration, started_at, now))

    def _child_exited(self, slot: Slot) -> None:
        """The slot's child exited (seen by its exit_fd): record what it sent, end the
        job it was running as lost, and start a new child.

        Its socket may still be open in a process it forked, so its end can't be seen there.
        """
        if slot.busy:
            self._collect(slot, block=False)
        if slot.process is None or slot.process.exitcode is None:
            # Replaced meanwhile (_collect saw the socket close); the exit_fd's number may even
            # belong to the new child.
            return
        if slot.busy:
            self._replace_child(slot, self._lost(slot))
        else:
            # An idle child: the next dispatch starts a new one (not now, so a child that can't
            # live never makes the worker fork in a loop).
            log_event("child_exited", logging.WARNING, worker=self.worker_id, child=slot.pid,
                      note=slot.exit_description().replace(" running it", ""))
            slot.close()

    def _lost(self, slot: Slot) -> dict[str, Any]:
        """The reply for the job a dead child was running: lost, counted towards MAX_LOST."""
        assert slot.job is not None
        reply = _failure("lost", "WorkerLost", f"{slot.exit_description()} before the job finished")
        reply["lost_before"] = self.ledger.lost_before(slot.job["id"])
        return reply

    def _replace_child(self, slot: Slot, reply: dict[str, Any]) -> None:
        """End the slot's running job with ``reply`` and start a new child in place of this one
        (killed if still alive). The jobs waiting behind it go back to the head of the buffer:
        they never started, so they spend no attempt."""
        slot.kill()
        self._requeue(slot)
        if tracing.ENABLED and slot.job is not None:
            # Its child never ended the attempt's span: the worker records one in its place.
            tracing.record_ended(slot.job, self.worker_id, reply, slot.started_at)
        self._finish(slot, reply)
        if not self.closing:
            slot.start()

    def _requeue(self, slot: Slot) -> None:
        self.ledger.buffer.extendleft(reversed(slot.take_waiting()))

    # -- deadlines and stops --------------------------------------------------------------------

    def enforce_deadlines(self) -> None:
        """Kill the children whose job ran past its timeout or its stop grace."""
        now = time.monotonic()
        for slot in self.slots:
            stop_at = slot.extra.get("stop_deadline")
            if stop_at is not None and now >= stop_at and slot.job is not None:
                # The job may have returned at the last moment, and the child started the next
                # one of its batch: read what it sent before killing anything.
                self._collect(slot, block=False)
                if slot.job is None or slot.extra.get("stop_deadline") != stop_at:
                    continue
                grace = float(jobs_settings.STOP_GRACE)
                self._replace_child(slot, {
                    "outcome": "stopped", "reason": f"stopped on request; killed after {grace:g}s stop grace",
                })
        for slot in self.slots:
            if slot.deadline is not None and now >= slot.deadline and slot.job is not None:
                # Replies already sent move the deadline on to the job that is really running.
                self._collect(slot, block=False)
                if slot.deadline is None or now < slot.deadline or slot.job is None:
                    continue
                timeout = slot.job.get("timeout")
                self._replace_child(slot, _failure(
                    "timeout", "JobTimeout", f"the attempt ran past its {timeout:g}s timeout and was killed"
                ))

    def stop(self, ids: set[int], grace: float) -> None:
        """Give the running jobs someone asked to stop ``grace`` seconds before their child is killed."""
        for slot in self.slots:
            job = slot.job
            if job is not None and job["id"] in ids and "stop_deadline" not in slot.extra:
                slot.extra["stop_deadline"] = time.monotonic() + grace
                log_event("stop_requested", job=job["id"], name=job["name"], worker=self.worker_id,
                          grace=f"{grace:g}s")

    # -- shutdown -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop every child: keep the outcomes already sent, hand back the jobs still running."""
        self.closing = True  # a child that died now is not replaced
        for slot in self.slots:
            if slot.busy:
                self._collect(slot, block=False)  # outcomes already sent are kept, not handed back
            if slot.busy:
                slot.kill()
                self._requeue(slot)
                self._hand_back(slot)
            else:
                self._stop_child(slot)

    def _hand_back(self, slot: Slot) -> None:
        """Shutdown ran out of grace: give the job back to the queue without spending an attempt.

        Not a ``max_attempts=1`` job: it started, and runs at most once, so it is lost (and ends
        ``dead``, its history saying why)."""
        while slot.job is not None:
            if slot.job["max_attempts"] <= 1:
                grace = "the worker shut down and killed it before the job finished"
                self._finish(slot, _failure("lost", "WorkerLost", grace))
            else:
                self._finish(slot, {"outcome": "handed_back"})

    def _stop_child(self, slot: Slot) -> None:
        slot.close()  # EOF on its pipe: the child returns from its loop and exits

    def stop_server(self) -> None:
        """Stop the fork server (once every child is stopped)."""
        if self.server is not None:
            self.server.stop()


def _served_child(worker_id: str, shutdown: ShutdownFlag | None, sock: socket.socket, server_pid: int) -> None:
    """What a child the fork server starts runs."""
    child_main(sock, worker_id, server_pid, shutdown)
