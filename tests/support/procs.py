"""Real worker processes for tests and the benchmark: start ``runjobs``, signal it, read its log.

A plain module (no fixtures) so bench/ can use it too; tests get these through conftest.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.db import connection

# Debian's Chromium for the browser tests and the docs' screenshots. Without the networking flags
# it keeps trying to reach Google's hosts, which this closed network refuses.
CHROMIUM = os.environ.get("DJANGO_JOBS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Python 3.12+'s warning about forking a process that runs threads: a worker must never fork that
# way. The subprocesses print every one (an "error" action would be lost: CPython clears the
# exception inside os.fork()), and the fixtures fail a test whose worker printed one
# (WorkerProcess.fork_warnings()). The suite's own filter is in pyproject.toml.
FORK_WARNING_SHOWN = "always:This process (pid=:DeprecationWarning"
FORK_WARNING_TEXT = "is multi-threaded, use of fork() may lead to deadlocks"


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    message: str | Callable[[], str] = "condition",
    interval: float = 0.05,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test at the deadline.

    Returns the truthy value. ``message`` (or a callable producing it, for late details such as
    a worker's log) says what was awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g}s waiting for: {text}")
        time.sleep(interval)


def pickup_seconds(definition: Any, label: str, worker: WorkerProcess, timeout: float) -> float:
    """Enqueue ``definition(label)`` in a committed transaction, wait (up to ``timeout``) until
    ``worker`` has run it, and return the seconds from the commit to its start."""
    from django.db import transaction
    from django.utils import timezone

    from django_jobs.models import Job, JobStatus

    with transaction.atomic():
        job = definition.enqueue(label)
    committed = timezone.now()
    wait_until(
        lambda: Job.objects.filter(pk=job.pk, status=JobStatus.SUCCEEDED).exists(),
        timeout=timeout,
        message=lambda: f"job {label} to run; {worker.describe()}",
    )
    return (Job.objects.get(pk=job.pk).started_at - committed).total_seconds()


def wait_listening(conn: Any, worker: WorkerProcess) -> None:
    """Wait until ``worker``'s listener has issued LISTEN (seen from ``conn``, another session)."""
    from django_jobs.db.channel import CHANNEL

    wait_until(
        lambda: conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            [f"LISTEN {CHANNEL}"],
        ).fetchone()[0] == 1,
        timeout=30,
        message=lambda: f"the worker to LISTEN; {worker.describe()}",
    )


def wait_lock_waiter(conn: Any, like: str, message: str) -> None:
    """Wait until one statement whose text is ``like`` (SQL LIKE) waits on a lock, as seen from
    ``conn``, a session outside any transaction (statistics views are frozen inside one)."""
    wait_until(
        lambda: conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [like],
        ).fetchone()[0] == 1,
        message=message,
    )


def database_url(settings_dict: dict[str, Any] | None = None) -> str:
    """A ``postgres://`` URL for the database Django is connected to (the *test* database)."""
    s = settings_dict or connection.settings_dict
    user = quote(s.get("USER") or "", safe="")
    password = quote(s.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{quote(s['NAME'], safe='')}"


@dataclass
class WorkerProcess:
    """A ``manage.py runjobs`` subprocess and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def describe(self) -> str:
        return f"runjobs {' '.join(self.args)} (pid {self.proc.pid}) output:\n{self.output()}"

    def fork_warnings(self) -> list[str]:
        """The lines where this process warned that it forked while running threads."""
        return [line for line in self.output().splitlines() if FORK_WARNING_TEXT in line]

    def wait_for_output(self, text: str, timeout: float = 15.0) -> None:
        """Wait until ``text`` appears in the worker's output (fail with the output if not)."""

        def seen() -> bool:
            exited = self.proc.poll() is not None
            if text in self.output():
                return True
            if exited:
                raise AssertionError(f"worker exited ({self.proc.returncode}) before printing "
                                     f"{text!r}: {self.describe()}")
            return False

        wait_until(seen, timeout=timeout, message=lambda: f"{text!r} in {self.describe()}")

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker did not exit within {timeout:g}s: {self.describe()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` (SIGTERM: graceful stop) and wait for the process to exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the worker's main process only (not its children)."""
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """Kill the worker and its children (its own process group) if still running."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


def runjobs_env(url: str, **extra: str) -> dict[str, str]:
    """Environment for a ``runjobs`` (or other ``django-admin``) subprocess against ``url``.

    tests/settings.py builds NAME straight from DATABASE_URL; only the pytest run itself has
    pytest-django point it at ``test_<name>``, so the subprocess gets the test database's real name.
    """
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=url, PYTHONUNBUFFERED="1",
               PYTHONWARNINGS=FORK_WARNING_SHOWN)
    env.update(extra)
    return env


