"""The fork server: children forked from a single-threaded process, watched through pidfds."""

from __future__ import annotations

import os
import signal
import socket
import threading
import warnings

import pytest

from django_jobs.worker.forkserver import ForkServer, ForkServerGone, available

pytestmark = [pytest.mark.subprocess, pytest.mark.skipif(not available(), reason="needs Linux pidfds")]


def _echo_then_exit(sock: socket.socket, server_pid: int) -> None:
    """Answer with our parent's pid and our thread count, then exit with the code asked for."""
    code = int(sock.recv(16))
    sock.sendall(f"{os.getppid()} {server_pid} {threading.active_count()}".encode())
    os._exit(code)


@pytest.fixture
def server():
    server = ForkServer(_echo_then_exit)
    server.start()
    yield server
    server.stop()


def _spawn(server: ForkServer, code: int) -> tuple[object, str]:
    ours, theirs = socket.socketpair()
    child = server.spawn(theirs, 0)
    theirs.close()
    ours.sendall(str(code).encode())
    answer = ours.recv(100).decode()
    ours.close()
    return child, answer


def test_spawn__child_is_the_servers_and_its_exit_code_is_reported(server):
    child, answer = _spawn(server, 3)
    parent, told, threads = answer.split()
    assert int(parent) == server.pid == int(told)
    child.join(timeout=10)
    assert child.exitcode == 3 and not child.is_alive()
    child.close()


def test_kill__through_the_pidfd_reports_the_signal(server):
    ours, theirs = socket.socketpair()
    child = server.spawn(theirs, 0)
    theirs.close()
    assert child.is_alive()
    child.kill()
    child.join(timeout=10)
    assert child.exitcode == -signal.SIGKILL
    child.close()
    ours.close()


def test_spawn__while_threads_run_forks_nothing_here_and_warns_of_nothing(server):
    # The point of the server: this process runs a thread, the child is forked elsewhere.
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            child, answer = _spawn(server, 0)
    finally:
        stop.set()
        thread.join()
    assert answer.split()[2] == "1"  # the child has one thread: its own
    child.join(timeout=10)
    assert child.exitcode == 0
    child.close()


def test_spawn__after_the_server_died_says_so(server):
    os.kill(server.pid, signal.SIGKILL)
    ours, theirs = socket.socketpair()
    with pytest.raises(ForkServerGone, match="the fork server has exited"):
        server.spawn(theirs, 0)
    ours.close()
    theirs.close()
