"""Shared fixtures: a second database connection, in-process and subprocess workers, waiting.

Tests that run a worker (in-process or as a subprocess) need ``transactional_db``: the worker
and its child processes use their own connections, so they only see rows that were committed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import psycopg
import pytest
from django.db import connection
from django.test import override_settings

REPO = Path(__file__).resolve().parent.parent


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
            pytest.fail(f"timed out after {timeout:g}s waiting for: {text}")
        time.sleep(interval)


def database_url(settings_dict: dict[str, Any] | None = None) -> str:
    """A ``postgres://`` URL for the database Django is connected to (the *test* database)."""
    s = settings_dict or connection.settings_dict
    user = quote(s.get("USER") or "", safe="")
    password = quote(s.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{quote(s['NAME'], safe='')}"


def connect(url: str | None = None, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A plain psycopg connection (not Django's) to ``url`` or to the test database."""
    return psycopg.connect(url or database_url(), autocommit=autocommit)


@pytest.fixture
def second_connection(transactional_db: None) -> Iterator[psycopg.Connection[Any]]:
    """A separate psycopg connection to the test database, autocommit unless a test BEGINs."""
    conn = connect()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def run_worker(transactional_db: None) -> Callable[..., Any]:
    """Run a burst ``Worker`` in this process (it forks its children) and return it.

    LISTEN/NOTIFY is off by default: a burst worker never waits for a notification, and the
    listener thread would add up to a second to every shutdown.
    """
    from django_jobs.conf import jobs_settings
    from django_jobs.worker import Worker

    def run(concurrency: int = 1, listen: bool = False, **options: Any) -> Worker:
        options.setdefault("burst", True)
        options.setdefault("scheduler", False)
        options.setdefault("grace", 5.0)
        jobs = {**jobs_settings.user_settings(), "LISTEN_NOTIFY": listen}
        with override_settings(DJANGO_JOBS=jobs):
            worker = Worker(concurrency=concurrency, **options)
            code = worker.run()
        assert code == 0, f"worker.run() returned {code}"
        return worker

    return run


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

    def wait_for_output(self, text: str, timeout: float = 15.0) -> None:
        """Wait until ``text`` appears in the worker's output (fail with the output if not)."""

        def seen() -> bool:
            exited = self.proc.poll() is not None
            if text in self.output():
                return True
            if exited:
                pytest.fail(f"worker exited ({self.proc.returncode}) before printing {text!r}: "
                            f"{self.describe()}")
            return False

        wait_until(seen, timeout=timeout, message=lambda: f"{text!r} in {self.describe()}")

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker did not exit within {timeout:g}s: {self.describe()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` (SIGTERM: graceful stop) and wait for the process to exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

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
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=url, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``python -m django runjobs ARGS…`` subprocesses; kill whatever is left at teardown.

    ``url`` defaults to the test database, so request ``transactional_db`` (or commit otherwise)
    for the worker to see the test's rows. ``env`` adds variables, e.g.
    ``DJANGO_JOBS_POLL_INTERVAL``.
    """
    started: list[WorkerProcess] = []

    def start(*args: str, url: str | None = None, env: dict[str, str] | None = None) -> WorkerProcess:
        log_path = tmp_path / f"runjobs-{len(started)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "django", "runjobs", *args],
                cwd=REPO,
                env=runjobs_env(url or database_url(), **(env or {})),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so teardown can reach the forked children too.
                start_new_session=True,
            )
        handle = WorkerProcess(proc, log_path, list(args))
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.kill()
