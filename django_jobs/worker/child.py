"""A worker's child process: forked by the pool, it runs the jobs it is sent, one at a time.

Jobs run in children, not threads, so the worker can kill one that is stuck in ``time.sleep``, a
socket read or a C call when its timeout passes, without touching the jobs of other children.
"""

from __future__ import annotations

import os
import signal
import socket
import time

from django.db import connections

from .. import tracing
from ..context import worker_shutdown
from . import protocol
from .invocation import become_child, run_job
from .shutdown import ShutdownFlag

# The reply for a job a child was sent but hadn't started when the worker began to shut down.
NOT_STARTED = {"outcome": "handed_back", "reason": "not started: the worker was shutting down"}

# File descriptors of the parent's ends of every child's socket (and of its pidfd), kept by the
# pool. A forked child inherits them all and must close them: while any copy of a socket's parent
# end is open, the child never sees EOF, so a child would outlive a worker killed with SIGKILL
# instead of exiting.
PARENT_ENDS: set[int] = set()


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process if its parent dies, even mid-job (best effort elsewhere)."""
    try:
        import ctypes  # deferred: only a child needs it, once

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


def child_main(
    sock: socket.socket, worker_id: str, parent_pid: int, shutdown: ShutdownFlag | None = None,
) -> None:
    """Run the batches of jobs read from ``sock`` until the worker closes it (the child's body).

    ``parent_pid`` is the fork server's (or the worker's, without one); ``shutdown`` is the
    worker's flag, which jobs see as ``current_job().stop_requested``.
    """
    pid = become_child()
    if shutdown is not None:
        worker_shutdown.is_set = shutdown.is_set
    for fd in list(PARENT_ENDS):
        try:
            os.close(fd)
        except OSError:
            pass
    PARENT_ENDS.clear()
    # Connections inherited from the parent share its sockets: forget them without closing
    # (psycopg never sends a terminate message from a forked child), and open our own.
    for wrapper in connections.all(initialized_only=True):
        wrapper.connection = None
    # The parent owns shutdown: Ctrl-C in a terminal, or systemd's SIGTERM to the whole control
    # group, reaches every process, and the parent decides whether running jobs get their grace
    # period (it kills children with SIGKILL when they don't).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent(parent_pid)
    try:
        _serve(sock, worker_id, pid, shutdown)
    finally:
        if tracing.ENABLED:
            # The child ends with os._exit(), which skips atexit: a batching span processor would
            # lose the spans of its last jobs.
            tracing.flush()


def _serve(sock: socket.socket, worker_id: str, pid: int, shutdown: ShutdownFlag | None) -> None:
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
            jobs = protocol.read_batch(received[:end])
            del received[: end + 1]
            for position, message in enumerate(jobs):
                began = time.monotonic()
                if shutdown is not None and shutdown.is_set():
                    reply = dict(NOT_STARTED)  # it waited behind another: give it back unstarted
                else:
                    reply = run_job(message, worker_id, check_before=position == 0)
                ended = time.monotonic()
                try:
                    sock.sendall(protocol.reply_line(reply, message, pid, began, ended))
                except OSError:
                    return
