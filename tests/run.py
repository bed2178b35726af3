#!/usr/bin/env python3
"""Run the test suite: ``python3 tests/run.py [pytest args...]``.

Needs only Python 3.11+ on the machine. It creates or reuses ``.venv`` (installing
``django-jobs[dev]`` when pyproject.toml changed), chooses a PostgreSQL, runs
``.venv/bin/python -m pytest`` with your arguments and exits with pytest's exit code
(except that "no tests collected", pytest's 5, becomes 1 with a message saying so).

Which database, first match wins (one line says which and why):

1. ``DJANGO_JOBS_TEST_PG=embedded``: a throwaway cluster (below), whatever else is set.
2. ``DATABASE_URL``, when set.
3. The server on 127.0.0.1:5432, when it accepts user ``postgres`` without a password.
   The URL names a database unique to this run, ``django_jobs_run<pid>``: it need not
   exist (Django creates ``test_django_jobs_run<pid>`` through the ``postgres`` database),
   and two runs sharing the server (two checkouts, CI and a developer) no longer create,
   use and drop the same ``test_postgres``.
4. A throwaway cluster from ``tests/pgcluster.py`` on a free port, using the system's
   PostgreSQL binaries, else those of the ``pgserver`` wheel (installed into ``.venv`` on
   demand). It is stopped and deleted when pytest ends.

Environment given to pytest:

``DATABASE_URL``
    The chosen database.
``DJANGO_JOBS_TEST_PG_CONTROL``
    Only when this script started the server: JSON for ``PostgresCluster.attach()``
    (``bindir``, ``base_dir``, ``port``, ``url``). Tests get a restartable handle with
    ``tests.pgcluster.server_under_test()``; without this variable it returns an
    ``ExternalServer`` whose ``can_restart`` is False.

Other variables read: ``DJANGO_JOBS_PG_BINDIR`` (use these PostgreSQL binaries; the value
``pgserver`` ignores system ones, installing pgserver if needed) and
``DJANGO_JOBS_PG_OS_USER`` (the account PostgreSQL runs as when we are root), see
tests/pgcluster.py.

Ctrl-C reaches pytest through the terminal; SIGTERM is passed on to it. Either way the
throwaway cluster is stopped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS.parent), str(TESTS)]

from example_project import _bootstrap  # noqa: E402  (stdlib only, on purpose)
from example_project._bootstrap import REPO, say  # noqa: E402

import pgcluster  # noqa: E402  (stdlib only, on purpose)

LOCAL_URL = "postgres://postgres@127.0.0.1:5432/postgres"
MODES = ("auto", "embedded")

# Run inside the venv: does a server accept this URL? psycopg[binary] brings its own libpq.
_PROBE = """
import sys, psycopg
try:
    psycopg.connect(sys.argv[1], connect_timeout=3).close()
except Exception as exc:
    print(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    sys.exit(1)
"""


def probe(python: Path, url: str) -> str | None:
    """Return None when ``url`` accepts a connection, else a one-line reason why not."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError as exc:
        return f"nothing listens on 127.0.0.1:5432 ({exc.strerror or exc})"
    try:
        result = subprocess.run([str(python), "-c", _PROBE, url], capture_output=True,
                                text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "the connection attempt timed out"
    return None if result.returncode == 0 else (result.stdout.strip() or result.stderr.strip())


def postgres_binaries(python: Path, *, required: bool) -> Path | None:
    """Find initdb/pg_ctl/postgres, installing pgserver into the venv when there are none."""
    bindir = pgcluster.find_bindir(python)
    if bindir is not None:
        return bindir
    say("no PostgreSQL binaries found; installing pgserver into .venv for its bundled ones")
    try:
        _bootstrap.pip_install("pgserver")
    except _bootstrap.BootstrapError as exc:
        if required:
            raise
        say(f"warning: {exc}; tests that start their own PostgreSQL cannot run")
        return None
    bindir = pgcluster.pgserver_bindir(python)
    if bindir is None and required:
        raise pgcluster.BinariesNotFound("pgserver is installed but has no usable binaries")
    return bindir


def choose_database(python: Path) -> tuple[str, str, bool]:
    """Return (url, why, start_cluster)."""
    mode = os.environ.get("DJANGO_JOBS_TEST_PG", "auto").strip().lower() or "auto"
    if mode not in MODES:
        sys.exit(f"tests/run.py: DJANGO_JOBS_TEST_PG={mode!r}: expected one of {', '.join(MODES)}")
    if mode == "embedded":
        ignored = " (DATABASE_URL ignored)" if os.environ.get("DATABASE_URL") else ""
        return "", f"DJANGO_JOBS_TEST_PG=embedded forces a throwaway cluster{ignored}", True
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"], "DATABASE_URL is set", False
    failure = probe(python, LOCAL_URL)
    if failure is None:
        url = LOCAL_URL.rsplit("/", 1)[0] + f"/django_jobs_run{os.getpid()}"
        return url, "a PostgreSQL on 127.0.0.1:5432 accepts user postgres", False
    return "", f"no usable PostgreSQL on 127.0.0.1:5432: {failure}", True


@contextlib.contextmanager
def chosen_database(python: Path, *, binaries_always: bool = True) -> Iterator[dict[str, str]]:
    """Choose a database (starting a throwaway cluster when none answers) and say which; yield
    the environment for the child process, ``DATABASE_URL`` set; stop the cluster afterwards.

    ``binaries_always`` finds (or installs) PostgreSQL binaries even when a server answers, for
    tests that start clusters of their own. Also used by bench/run.py.
    """
    url, why, start_cluster = choose_database(python)
    env = dict(os.environ)
    env.pop(pgcluster.CONTROL_ENV, None)
    cluster = None
    try:
        bindir = None
        if binaries_always or start_cluster:
            bindir = postgres_binaries(python, required=start_cluster)
        if start_cluster:
            cluster = pgcluster.PostgresCluster(bindir)
            cluster.start()
            url = cluster.url
            why += f"; started one with {bindir}"
            env[pgcluster.CONTROL_ENV] = cluster.control
        say(f"database {url} ({why})")
        env["DATABASE_URL"] = url
        yield env
    finally:
        if cluster is not None:
            cluster.cleanup()


def run_child(argv: list[str], env: dict[str, str]) -> int:
    """Run ``argv`` in the repository; pass SIGTERM on to it; return its exit code."""
    child = subprocess.Popen(argv, cwd=REPO, env=env)

    def forward(signum: int, frame: object) -> None:
        child.send_signal(signum)

    previous_term = signal.signal(signal.SIGTERM, forward)
    # Ctrl-C is delivered to pytest by the terminal already; we only wait for it to finish.
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


def run_pytest(python: Path, args: list[str], env: dict[str, str]) -> int:
    """Run pytest in the venv; pass SIGTERM on to it; return its exit code."""
    return run_child([str(python), "-m", "pytest", *args], env)


def main(args: list[str]) -> int:
    # Until pytest runs, SIGTERM unwinds through the finally below, which stops the cluster.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        python = _bootstrap.ensure_venv("dev")
    except _bootstrap.BootstrapError as exc:
        print(f"tests/run.py: error: {exc}", file=sys.stderr)
        return 1
    try:
        with chosen_database(python) as env:
            code = run_pytest(python, args, env)
    except (pgcluster.PostgresClusterError, _bootstrap.BootstrapError) as exc:
        print(f"tests/run.py: error: {exc}", file=sys.stderr)
        return 1
    if code == 5:
        print("tests/run.py: pytest collected no tests (its exit code 5); that is a failure here: "
              "check the arguments and that tests/ holds test_*.py files.", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    _bootstrap.require_python()
    sys.exit(main(sys.argv[1:]))
