"""Real worker processes for tests: start ``manage.py runjobs``, signal it, read its log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from django.db import connection

REPO = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.02)  # polling interval of a condition with a deadline


def test_database_url() -> str:
    """A URL for the database the current test uses (pytest-django's test database)."""
    s = connection.settings_dict
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{s['NAME']}"


class WorkerProcess:
    """A ``manage.py runjobs`` subprocess whose output goes to a file we can search."""

    def __init__(self, *args: str, settings: dict[str, Any] | None = None):
        self.log_path = Path(tempfile.mkstemp(prefix="runjobs-", suffix=".log")[1])
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": test_database_url(),
            "DJANGO_JOBS_TEST_SETTINGS": json.dumps(settings or {}),
            "PYTHONUNBUFFERED": "1",
        }
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "django", "runjobs", *args],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        wait_until(lambda: text in self.output() or self.proc.poll() is not None, timeout, repr(text))
        assert text in self.output(), f"worker exited without logging {text!r}:\n{self.output()}"

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            # The whole family: children would otherwise outlive a SIGKILLed parent.
            for child in _children(self.proc.pid):
                _kill(child)
            _kill(self.proc.pid)
            self.proc.wait(timeout=10)
        self._log.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(x) for x in out.split()]


def children_of(pid: int) -> list[int]:
    return _children(pid)
