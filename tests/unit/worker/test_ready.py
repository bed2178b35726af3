"""worker/pool.py's _ready(): which of the loop's sockets and descriptors can be read now."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from django_jobs.worker.pool import _ready


def test_ready__names_the_readable_the_closed_and_the_exited_and_nothing_else() -> None:
    quiet_a, quiet_b = socket.socketpair()
    talking_a, talking_b = socket.socketpair()
    closed_a, closed_b = socket.socketpair()
    wake_r, wake_w = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    pidfd = os.pidfd_open(child.pid)
    try:
        child.wait(timeout=30)
        talking_b.send(b"reply\n")
        closed_b.close()  # a child that died: its end of the socket is gone
        os.write(wake_w, b"n")

        ready = _ready([quiet_a, talking_a, closed_a, pidfd, wake_r], timeout=5.0)

        assert ready.count(quiet_a) == 0
        assert {id(x) for x in ready if not isinstance(x, int)} == {id(talking_a), id(closed_a)}
        assert sorted(x for x in ready if isinstance(x, int)) == sorted([pidfd, wake_r])
    finally:
        for s in (quiet_a, quiet_b, talking_a, talking_b, closed_a):
            s.close()
        for fd in (wake_r, wake_w, pidfd):
            os.close(fd)


def test_ready__returns_nothing_once_the_timeout_passes() -> None:
    a, b = socket.socketpair()
    try:
        assert _ready([a], timeout=0.01) == []
        assert _ready([a], timeout=-1) == []  # a deadline already past: no wait at all
    finally:
        a.close()
        b.close()
