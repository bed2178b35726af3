"""Shared fixtures: a second database connection, in-process and subprocess workers, waiting.

Tests that run a worker (in-process or as a subprocess) need ``transactional_db``: the worker
and its child processes use their own connections, so they only see rows that were committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.test import override_settings

from tests.support import REPO
from tests.support.procs import WorkerProcess, database_url, runjobs_env, wait_until  # noqa: F401


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
    """Run a burst ``WorkerLoop`` in this process (it forks its children) and return it.

    LISTEN/NOTIFY is off by default: a burst worker never waits for a notification, and the
    listener thread would add up to a second to every shutdown.
    """
    from django_jobs.conf import jobs_settings
    from django_jobs.worker import WorkerLoop

    def run(concurrency: int = 1, listen: bool = False, **options: Any) -> WorkerLoop:
        options.setdefault("burst", True)
        options.setdefault("scheduler", False)
        options.setdefault("grace", 5.0)
        jobs = {**jobs_settings.user_settings(), "LISTEN_NOTIFY": listen}
        with override_settings(DJANGO_JOBS=jobs):
            worker = WorkerLoop(concurrency=concurrency, **options)
            code = worker.run()
        assert code == 0, f"worker.run() returned {code}"
        return worker

    return run


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
                # The test's own temporary directory: health files of killed workers stay there.
                env=runjobs_env(url or database_url(), **{"TMPDIR": str(tmp_path), **(env or {})}),
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
    forked = {" ".join(h.args): h.fork_warnings() for h in started if h.fork_warnings()}
    assert not forked, f"a worker forked while running threads: {forked}"


@pytest.fixture
def only_our_schedules(request: pytest.FixtureRequest) -> None:
    """Delete the schedules other apps' migrations seeded, in a test marked ``django_db``."""
    # Migrations of other apps may seed schedules (the example shop's nightly sync); these tests
    # count every schedule and every job a firing makes.
    # Imported here, like the other fixtures' imports: conftest loads before Django's apps do.
    from django_jobs.models import Schedule

    marker = request.node.get_closest_marker("django_db")
    if marker is not None:
        request.getfixturevalue("transactional_db" if marker.kwargs.get("transaction") else "db")
        Schedule.objects.all().delete()


@pytest.fixture
def declare() -> Iterator[Callable[..., Any]]:
    """Register ``@job(name=…, cron=…)`` functions for one test, and forget them afterwards."""
    from django_jobs import job
    from django_jobs.registry import registry

    names: list[str] = []

    def register(name: str, cron: str) -> Any:
        def nightly(label: str = "nightly") -> None:
            """A job with a schedule declared in code."""

        names.append(name)
        return job(name=name, cron=cron)(nightly)

    yield register
    for name in names:
        registry._jobs.pop(name, None)


@pytest.fixture
def limited_jobs() -> Iterator[dict[str, Any]]:
    """Register jobs with flow-control limits for one test (by short name), and forget them after.

    Not in tests/testapp: a limit registered for every test would show on every overview page and
    in every metrics scrape, and hold jobs those tests expect to run.
    """
    from django_jobs import job
    from django_jobs.registry import registry

    def call_partner(order_id: int) -> None:
        """At most two at once (a code limit on a job name)."""

    def sync_account(account_id: int, tenant_id: int = 0) -> None:
        """One at a time per account, five starts a second per tenant."""

    def send_digest() -> None:
        """Thirty starts a minute."""

    def bill_customer(customer_id: int) -> None:
        """One at a time, in order, per customer."""

    definitions = {
        "call_partner": job(name="tests.limited.call_partner", queue="partner-api", concurrency=2)(call_partner),
        "sync_account": job(
            name="tests.limited.sync_account", concurrency=1, concurrency_key="account:{account_id}",
            rate="5/s", rate_key="tenant:{tenant_id}",
        )(sync_account),
        "send_digest": job(name="tests.limited.send_digest", rate="30/m")(send_digest),
        "bill_customer": job(name="tests.limited.bill_customer", sequence_key="customer:{customer_id}")(bill_customer),
    }
    yield definitions
    for definition in definitions.values():
        registry._jobs.pop(definition.name, None)


@pytest.fixture
def no_code_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the test app's jobs that declare limits (tests.testapp.jobs, for the flow-control
    process tests), for tests of what the admin and the metrics show when nothing is limited."""
    from django_jobs.registry import registry

    monkeypatch.setattr(registry, "_jobs", {n: d for n, d in registry._jobs.items() if not d.keyed})


# -- forking while threads run fails the run (see pyproject.toml's filterwarnings) --------------

# Python 3.12+ warns of every fork in a process with more than one thread. Worker subprocesses
# are single-threaded but for the worker's own threads, so there any such warning fails the test
# (the worker_process fixture reads their logs). This pytest process also runs the test
# harness's threads (an SMTP server, an HTTP stub for Stripe, Playwright's), and an in-process
# worker forks its fork server beside them: what fails the run here is a fork while one of the
# worker's own threads (django_jobs-listener, django_jobs-heartbeat) runs, seen at the fork
# itself; the harness's are listed.
_FORKED_WITH_THREADS: list[str] = []
_FORKED_WITH_OUR_THREADS: list[str] = []
_CURRENT_TEST = [""]


def _before_fork() -> None:
    ours = sorted(t.name for t in threading.enumerate() if t.name.startswith("django_jobs-") and t.is_alive())
    if ours:
        _FORKED_WITH_OUR_THREADS.append(f"{_CURRENT_TEST[0]}: forked while {', '.join(ours)} ran")


os.register_at_fork(before=_before_fork)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    _CURRENT_TEST[0] = item.nodeid
    return (yield)


def pytest_warning_recorded(warning_message: Any, when: str, nodeid: str, location: Any) -> None:
    from tests.support.procs import FORK_WARNING_TEXT

    if FORK_WARNING_TEXT in str(warning_message.message):
        _FORKED_WITH_THREADS.append(f"{nodeid or when}: {warning_message.filename}:{warning_message.lineno}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _FORKED_WITH_OUR_THREADS and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FORKED_WITH_OUR_THREADS:
        terminalreporter.section("forked while the worker's own threads ran: the run fails", red=True)
        for line in _FORKED_WITH_OUR_THREADS:
            terminalreporter.write_line(line)
    if _FORKED_WITH_THREADS:
        terminalreporter.section("forked beside other threads in this process (Python 3.12+ DeprecationWarning)")
        for line in _FORKED_WITH_THREADS:
            terminalreporter.write_line(line)
