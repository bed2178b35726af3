"""The README's quickstart, ``python3 example_project/demo.py``, as an acceptance test.

Runs ``demo.py --check`` on a free port against a throwaway SQLite file: migrate, create the
admin, start ``runjobs`` and ``runserver``, wait for the admin login page over HTTP, stop
both, and require the worker to exit 0 on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

DEMO = REPO / "example_project" / "demo.py"

# demo.py waits up to 90 s for the server and 40 s for the worker to stop; leave room.
TIMEOUT = 240


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_demo_check(env: dict[str, str], port: int) -> tuple[int, str]:
    """Run ``demo.py --check``; on timeout stop it with SIGTERM so its children go too."""
    proc = subprocess.Popen(
        [sys.executable, str(DEMO), "--check", "--port", str(port)],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # demo.py stops runjobs and runserver on SIGTERM
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        pytest.fail(f"demo.py --check did not finish within {TIMEOUT}s:\n{output}")
    return proc.returncode, output


@pytest.mark.subprocess
def test_demo_check__serves_admin_and_runs_worker(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # pytest-django's; demo.py sets its own
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.sqlite3'}"

    code, output = run_demo_check(env, port)

    assert code == 0, f"demo.py --check exited {code}:\n{output}"
    assert f"http://127.0.0.1:{port}/admin/" in output, output
    assert "user admin  password " in output, output
    assert "check passed" in output, output
    assert (tmp_path / "demo.sqlite3").exists()
