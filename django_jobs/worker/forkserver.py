"""The fork server: one single-threaded process that forks the worker's children on request.

The worker's main process runs threads (the heartbeat, the listener). A child forked from it
while a thread holds a lock (logging's, the import lock, libpq's) inherits the lock held, with
nobody left to release it, and can hang; Python 3.12 warns of exactly this. So the worker forks
this server once, before it starts any thread, and every child (the first ones and each
replacement after a timeout or a crash) is forked from the server, which never runs a thread.

The two talk over a SOCK_SEQPACKET socket pair, one record per message, never pickle:

- worker -> server: ``S`` + the slot's index, with the child's end of its socket pair attached.
- server -> worker: ``P`` + the new child's pid, with a pidfd for it attached, so the worker can
  watch and kill the child without racing a reused pid (or ``E`` + errno when the fork failed);
  ``X`` + pid + exit code once a child has exited and the server has reaped it (the server is
  the children's parent).

A child's start costs one fork of the server and two small messages (see docs/performance.md).
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable

from .child import die_with_parent

_START = struct.Struct("=ci")  # b"S", slot index
_STARTED = struct.Struct("=ci")  # b"P", pid
_FAILED = struct.Struct("=ci")  # b"E", errno: the server couldn't start the child
_EXITED = struct.Struct("=cii")  # b"X", pid, exit code (negative: killed by that signal)
_RECORD = max(_START.size, _STARTED.size, _FAILED.size, _EXITED.size)


def available() -> bool:
    """Whether this platform has what the server needs (Linux: pidfds, fd passing)."""
    return hasattr(os, "pidfd_open") and hasattr(socket, "send_fds") and hasattr(signal, "pidfd_send_signal")


class ForkServerGone(OSError):
    """The fork server has exited: no child can be started any more."""


class ForkServer:
    """The worker's side of the fork server (see the module docstring)."""

    def __init__(self, target: Callable[[socket.socket, int], None]) -> None:
        #: What a new child runs: ``target(its socket, the server's pid)``; returning ends it.
        self.target = target
        self.pid: int | None = None
        self.pidfd: int | None = None
        self._sock: socket.socket | None = None
        self._exited: dict[int, int] = {}

    def start(self) -> None:
        """Fork the server (call it before any thread starts)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        worker_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the server
            code = 0
            try:
                ours.close()
                _serve(theirs, worker_pid, self.target)
            except BaseException:  # noqa: BLE001 - say why, then exit: never return into the worker's code
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        self._sock, self.pid, self.pidfd = ours, pid, os.pidfd_open(pid)

    def fds(self) -> list[int]:
        """The worker's descriptors for the server, which a child must not keep."""
        return [fd for fd in (self._sock.fileno() if self._sock else None, self.pidfd) if fd is not None]

    def spawn(self, child_end: socket.socket, index: int) -> ServedChild:
        """Start a child running ``target(child_end, server pid)``.

        OSError if it couldn't (out of processes, memory or descriptors); ForkServerGone (an
        OSError too) if the server has died.
        """
        if self._sock is None:
            raise ForkServerGone("the fork server isn't running")
        try:
            socket.send_fds(self._sock, [_START.pack(b"S", index)], [child_end.fileno()])
            while True:
                kind, pid, code, fd = self._receive(block=True)
                if kind == b"E":
                    raise OSError(code, os.strerror(code))
                if kind == b"P":
                    if fd is None:  # we had no descriptor left to receive its pidfd in
                        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
                    return ServedChild(self, pid, fd)
        except (ConnectionError, EOFError) as exc:
            raise ForkServerGone(f"the fork server has exited ({exc})") from exc

    def exit_code(self, pid: int, timeout: float) -> int | None:
        """The exit code of the server's child ``pid``, waiting up to ``timeout`` seconds for the
        server to report it; None if it doesn't (or the server is gone)."""
        deadline = time.monotonic() + timeout
        while pid not in self._exited and self._sock is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._sock], [], [], left)[0]:
                return None
            try:
                self._receive(block=False)
            except (OSError, EOFError):
                return None
        return self._exited.pop(pid, None)

    def _receive(self, block: bool) -> tuple[bytes, int, int, int | None]:
        """Read one record (an ``X`` is filed away for exit_code())."""
        assert self._sock is not None
        data, fds, _flags, _addr = socket.recv_fds(self._sock, _RECORD, 1, 0 if block else socket.MSG_DONTWAIT)
        if not data:
            raise EOFError("the fork server closed its socket")
        if data[:1] == b"X":
            _kind, pid, code = _EXITED.unpack(data)
            self._exited[pid] = code
            return b"X", pid, code, None
        if data[:1] == b"E":
            _kind, number = _FAILED.unpack(data)
            return b"E", 0, number, None
        _kind, pid = _STARTED.unpack(data)
        return b"P", pid, 0, fds[0] if fds else None

    def stop(self) -> None:
        """Close the server's socket (it exits at EOF) and wait a little for it."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.pid is not None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(self.pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break  # reaped already (a worker that is PID 1 reaps every child)
                time.sleep(0.005)
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            self.pid = None
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class ServedChild:
    """A child the fork server started, as the worker sees it (what ``multiprocessing.Process``
    offers, for the part the pool uses)."""

    def __init__(self, server: ForkServer, pid: int, pidfd: int) -> None:
        self.server, self.pid, self.pidfd = server, pid, pidfd
        self._exitcode: int | None = None

    @property
    def sentinel(self) -> int:
        """A descriptor that becomes readable once the child has exited (its pidfd)."""
        return self.pidfd

    def _exited(self, timeout: float) -> bool:
        if self.pidfd < 0:  # closed: it was reaped, or given up on
            return True
        return bool(select.select([self.pidfd], [], [], timeout)[0])

    @property
    def exitcode(self) -> int | None:
        """Its exit code once it has exited (negative: killed by that signal), else None."""
        if self._exitcode is None and self.pidfd >= 0 and self._exited(0):
            # The server reaps it at its SIGCHLD and says so at once: wait that long, not more.
            self._exitcode = self.server.exit_code(self.pid, timeout=2.0)
        return self._exitcode

    def is_alive(self) -> bool:
        return not self._exited(0)

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` seconds for the child to exit."""
        if self._exited(timeout if timeout is not None else 3600.0):
            self.exitcode  # noqa: B018 - read it while the server's report is fresh

    def kill(self) -> None:
        """SIGKILL the child (through its pidfd: never another process that got its pid)."""
        if self.pidfd < 0:
            return
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Forget the child (its pidfd is closed)."""
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


# -- the server's side --------------------------------------------------------------------------


def _serve(sock: socket.socket, worker_pid: int, target: Callable[[socket.socket, int], None]) -> None:
    """The server's loop: fork a child per request, report each child's exit, exit at EOF."""
    # The worker owns shutdown, as for the children (see child.child_main).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent(worker_pid)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    server_pid = os.getpid()
    while True:
        try:
            ready, _, _ = select.select([sock, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        _report_exits(sock)
        if sock not in ready:
            continue
        data, fds, _flags, _addr = socket.recv_fds(sock, _RECORD, 1)
        if not data:
            return  # the worker closed its end (shutdown) or died: the children see EOF too
        if not fds:  # no descriptor left to receive the child's socket in
            sock.send(_FAILED.pack(b"E", errno.EMFILE))
            continue
        child_fd = fds[0]
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(child_fd)
            sock.send(_FAILED.pack(b"E", exc.errno or errno.EAGAIN))
            continue
        if pid == 0:
            _child(child_fd, server_pid, [sock.fileno(), wake_r, wake_w], target)
        os.close(child_fd)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            os.kill(pid, signal.SIGKILL)  # it would run unwatched: its exit is reported as usual
            sock.send(_FAILED.pack(b"E", exc.errno or errno.EMFILE))
            continue
        try:
            socket.send_fds(sock, [_STARTED.pack(b"P", pid)], [pidfd])
        finally:
            os.close(pidfd)


def _report_exits(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        try:
            sock.send(_EXITED.pack(b"X", pid, os.waitstatus_to_exitcode(status)))
        except OSError:
            return


def _child(
    child_fd: int, server_pid: int, close: list[int], target: Callable[[socket.socket, int], None],
) -> None:
    """A new child's first moments: drop the server's state, run ``target``, exit."""
    code = 0
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in close:
            os.close(fd)
        # What multiprocessing does for its children: a job reading stdin gets EOF, not the
        # terminal the worker was started from.
        try:
            sys.stdin.close()
            sys.stdin = open(os.devnull)  # noqa: SIM115 - kept open for the child's life
        except (OSError, ValueError):
            pass
        target(socket.socket(fileno=child_fd), server_pid)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - say why, then exit
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(code)
