"""Throwaway PostgreSQL clusters for tests, and a handle on servers we do not control.

Standard library only: ``tests/run.py`` imports this before the virtualenv exists.

Typical use in a test that needs to restart PostgreSQL under a running worker::

    from tests.support.pgcluster import PostgresCluster

    with PostgresCluster() as pg:      # initdb + start on a free port, cleanup on exit
        connect(pg.url)
        pg.restart()                   # pg_ctl -w: returns once the server accepts connections
        pg.stop(); ...; pg.start()     # or an outage of your own length

``server_under_test()`` answers "may I restart the database the test run is using?":
it returns the cluster ``tests/run.py`` started (``can_restart`` is True) or an
``ExternalServer`` for any other ``DATABASE_URL`` (``can_restart`` is False).

Binaries are looked up in this order (see ``find_bindir``): ``$DJANGO_JOBS_PG_BINDIR``;
the newest ``/usr/lib/postgresql/*/bin``; the directory of ``pg_ctl`` on ``PATH``;
the binaries bundled in the ``pgserver`` wheel (``pgserver/pginstall/bin``).
``DJANGO_JOBS_PG_BINDIR=pgserver`` skips straight to the last.

initdb and postgres refuse to run as root. When the effective uid is 0 they run as
the ``postgres`` OS user, or ``nobody`` when there is none (override with
``$DJANGO_JOBS_PG_OS_USER``); the cluster directory is chowned to that user.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "BinariesNotFound",
    "ExternalServer",
    "NotRestartable",
    "PostgresCluster",
    "PostgresClusterError",
    "CONTROL_ENV",
    "find_bindir",
    "server_under_test",
]

#: Set by tests/run.py to ``PostgresCluster.control`` (JSON) when it started the server itself.
CONTROL_ENV = "DJANGO_JOBS_TEST_PG_CONTROL"

REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")

# How long pg_ctl may take to start or stop a server (seconds). Generous: CI machines stall.
PG_CTL_TIMEOUT = 60


class PostgresClusterError(RuntimeError):
    """A throwaway cluster could not be created, started or stopped."""


class BinariesNotFound(PostgresClusterError, FileNotFoundError):
    """No initdb/pg_ctl/postgres binaries on this machine."""


class NotRestartable(PostgresClusterError, PermissionError):
    """The server belongs to someone else: this process may not stop or restart it."""


# --- finding binaries -------------------------------------------------------------------------


def _has_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in REQUIRED_BINARIES)


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); numeric, so 9.6 sorts below 15.
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def system_bindir() -> Path | None:
    """Return the newest system PostgreSQL bin directory, or None."""
    override = os.environ.get("DJANGO_JOBS_PG_BINDIR")
    if override == "pgserver":  # skip system binaries: proves the pgserver fallback
        return None
    if override:
        path = Path(override)
        if not _has_binaries(path):
            raise BinariesNotFound(
                f"DJANGO_JOBS_PG_BINDIR={override} does not contain {', '.join(REQUIRED_BINARIES)}"
            )
        return path
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_binaries(Path(candidate)):
            return Path(candidate)
    on_path = shutil.which("pg_ctl")
    if on_path and _has_binaries(Path(on_path).resolve().parent):
        return Path(on_path).resolve().parent
    return None


_PGSERVER_LOCATOR = """
import importlib.util, sys
spec = importlib.util.find_spec("pgserver")
if spec and spec.submodule_search_locations:
    sys.stdout.write(list(spec.submodule_search_locations)[0])
"""


def pgserver_bindir(python: str | os.PathLike[str] | None = None) -> Path | None:
    """Return ``pgserver``'s bundled bin directory, as installed for ``python`` (default: this one).

    The package is located without being imported: importing it pulls in psutil and friends,
    and from tests/run.py it lives in another interpreter's site-packages.
    """
    # Not realpath: every venv's python is a symlink to the same base interpreter.
    if python is None or os.path.abspath(python) == os.path.abspath(sys.executable):
        import importlib.util

        spec = importlib.util.find_spec("pgserver")
        locations = list(spec.submodule_search_locations or []) if spec else []
        package_dir = locations[0] if locations else ""
    else:
        result = subprocess.run(
            [os.fspath(python), "-c", _PGSERVER_LOCATOR],
            capture_output=True, text=True, timeout=60, check=False,
        )
        package_dir = result.stdout.strip() if result.returncode == 0 else ""
    if not package_dir:
        return None
    bindir = Path(package_dir) / "pginstall" / "bin"
    return bindir if _has_binaries(bindir) else None


def find_bindir(python: str | os.PathLike[str] | None = None) -> Path | None:
    """Return a directory holding initdb, pg_ctl and postgres, or None when there is none."""
    return system_bindir() or pgserver_bindir(python)


# --- running as an unprivileged user ----------------------------------------------------------


def _os_user() -> pwd.struct_passwd | None:
    """Return the account to run PostgreSQL as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get("DJANGO_JOBS_PG_OS_USER")
    names = [wanted] if wanted else ["postgres", "nobody"]
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresClusterError(
        f"running as root, and none of the OS users {names} exists to run PostgreSQL as "
        "(it refuses root); create one or set DJANGO_JOBS_PG_OS_USER"
    )


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _accepts_tcp(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- the cluster ------------------------------------------------------------------------------


class PostgresCluster:
    """A private PostgreSQL cluster in a temporary directory, listening on 127.0.0.1.

    ``start()`` runs initdb the first time. Every start/stop goes through ``pg_ctl -w``, so it
    returns only once the server accepts connections (or is fully down). Trust auth, user
    ``postgres``, fsync off: it is for tests, and is deleted by ``cleanup()``.
    """

    can_restart = True
    host = "127.0.0.1"

    def __init__(
        self,
        bindir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        found = Path(bindir) if bindir else find_bindir()
        if found is None:
            raise BinariesNotFound(
                "no PostgreSQL binaries found: install PostgreSQL (e.g. apt-get install "
                "postgresql) or `pip install pgserver` into this interpreter, or set "
                "DJANGO_JOBS_PG_BINDIR"
            )
        self.bindir = found
        self.port = port or _free_port(self.host)
        self._port_fixed = port is not None
        self.settings = dict(settings or {})
        self.user = _os_user()
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="django-jobs-pg-"))
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "server.log"
        self._initialised = (self.data_dir / "PG_VERSION").exists()
        if self.user is not None:
            os.chown(self.base_dir, self.user.pw_uid, self.user.pw_gid)
            self.base_dir.chmod(0o700)

    # -- public surface

    @property
    def url(self) -> str:
        """Return a libpq/dj-database-url style URL for the ``postgres`` database."""
        return f"postgres://postgres@{self.host}:{self.port}/postgres"

    @property
    def control(self) -> str:
        """Return the JSON another process needs to ``attach()`` to this cluster."""
        return json.dumps({
            "bindir": str(self.bindir),
            "base_dir": str(self.base_dir),
            "port": self.port,
            "url": self.url,
        })

    @classmethod
    def attach(cls, control: str) -> PostgresCluster:
        """Return a handle on a cluster another process created (``control`` from ``.control``).

        The handle may stop, start and restart the server, but ``cleanup()`` on it only makes
        sure the server is running again: the creator owns the directory.
        """
        info: dict[str, Any] = json.loads(control)
        cluster = cls(info["bindir"], port=int(info["port"]), base_dir=info["base_dir"])
        cluster._attached = True
        return cluster

    _attached = False

    def start(self) -> None:
        """Create the cluster if needed and start it; return once it accepts connections."""
        if not self._initialised:
            self._initdb()
        if self.is_running():
            return
        attempts = 1 if self._port_fixed or self._attached else 3
        for attempt in range(attempts):
            self._write_conf()
            result = self._pg_ctl(
                "start", "-w", "-t", str(PG_CTL_TIMEOUT), "-l", str(self.log_file)
            )
            if result.returncode == 0:
                self._port_fixed = True  # the URL has been handed out; keep it across restarts
                return
            if attempt + 1 < attempts and "could not bind" in self._log_tail():
                # Someone took the port between _free_port() and the bind; pick another.
                self.port = _free_port(self.host)
                continue
            raise PostgresClusterError(self._failure("pg_ctl start", result))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: smart, fast or immediate); return once it is down."""
        if not self.is_running():
            return
        result = self._pg_ctl("stop", "-w", "-t", str(PG_CTL_TIMEOUT), "-m", mode)
        if result.returncode != 0 and self.is_running():
            raise PostgresClusterError(self._failure("pg_ctl stop", result))

    def restart(self, mode: str = "fast") -> None:
        """Stop and start the server on the same port; return once it accepts connections."""
        self.stop(mode)
        self.start()

    def is_running(self) -> bool:
        """Return whether the postmaster is up (``pg_ctl status``)."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._pg_ctl("status").returncode == 0

    def accepts_connections(self) -> bool:
        """Return whether the server's TCP port takes connections right now."""
        return _accepts_tcp(self.host, self.port)

    def cleanup(self) -> None:
        """Stop the server and delete its directory (attached handles: restart it instead)."""
        if self._attached:
            self.start()
            return
        try:
            if self._initialised:
                self.stop("fast")
        finally:
            if self._owns_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<PostgresCluster {self.url} dir={self.base_dir}>"

    # -- internals

    def _run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        env = dict(os.environ)
        if self.user is not None:
            kwargs.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
            env.update(HOME=self.user.pw_dir, USER=self.user.pw_name, LOGNAME=self.user.pw_name)
        # Our own libpq settings must not leak into pg_ctl's readiness checks.
        for var in ("PGHOST", "PGPORT", "PGDATA", "PGUSER", "PGDATABASE", "PGOPTIONS"):
            env.pop(var, None)
        # Output goes to a file, not a pipe: the postmaster pg_ctl leaves behind inherits
        # the descriptors, and a pipe would then never reach EOF.
        with tempfile.TemporaryFile("w+") as out:
            try:
                result = subprocess.run(
                    argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self.base_dir, env=env, text=True, timeout=timeout, check=False,
                    **kwargs,
                )
            except subprocess.TimeoutExpired as exc:
                raise PostgresClusterError(f"{' '.join(argv)} timed out after {timeout}s") from exc
            out.seek(0)
            result.stdout = out.read()
        return result

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args]
        return self._run(argv, timeout=PG_CTL_TIMEOUT + 30)

    def _initdb(self) -> None:
        self._ensure_binaries_reachable()
        argv = [
            str(self.bindir / "initdb"), "-D", str(self.data_dir),
            "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        ]
        result = self._run(argv, timeout=300)
        if result.returncode != 0:
            raise PostgresClusterError(self._failure("initdb", result))
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\ninclude_if_exists = 'pgcluster.conf'\n")
        self._initialised = True

    def _write_conf(self) -> None:
        # Rewritten before every start so a port change on retry takes effect. Unix sockets
        # live in our directory when the path fits (sun_path is ~107 bytes), else are off.
        socket_dir = str(self.base_dir) if len(str(self.base_dir)) < 80 else ""
        settings = {
            "port": str(self.port),
            "listen_addresses": f"'{self.host}'",
            "unix_socket_directories": f"'{socket_dir}'",
            # Throwaway data: durability buys nothing and costs seconds per test run.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            **self.settings,
        }
        path = self.data_dir / "pgcluster.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _ensure_binaries_reachable(self) -> None:
        """Copy the binaries somewhere the OS user can execute them, if it cannot now.

        A venv under /root (mode 0700) holds pgserver's binaries out of reach of the
        ``postgres`` user; a copy inside our own directory is always reachable.
        """
        if self.user is None:
            return
        try:
            probe = self._run([str(self.bindir / "initdb"), "--version"], timeout=60)
            if probe.returncode == 0:
                return
        except OSError:
            pass
        prefix = self.bindir.parent
        copy_root = self.base_dir / "pginstall-copy"
        if prefix.name == "pginstall" and (prefix.parent.parent / "pgserver.libs").is_dir():
            # pgserver's binaries find libpq through RPATH $ORIGIN/../../../pgserver.libs.
            shutil.copytree(prefix, copy_root / "pgserver" / "pginstall", symlinks=True)
            shutil.copytree(prefix.parent.parent / "pgserver.libs", copy_root / "pgserver.libs",
                            symlinks=True)
            new_bindir = copy_root / "pgserver" / "pginstall" / "bin"
        else:
            shutil.copytree(prefix, copy_root / prefix.name, symlinks=True)
            new_bindir = copy_root / prefix.name / self.bindir.name
        for dirpath, dirnames, filenames in os.walk(copy_root):
            for name in dirnames + filenames:
                with contextlib.suppress(OSError):
                    os.chown(os.path.join(dirpath, name), self.user.pw_uid, self.user.pw_gid,
                             follow_symlinks=False)
        os.chown(copy_root, self.user.pw_uid, self.user.pw_gid)
        self.bindir = new_bindir

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _failure(self, what: str, result: subprocess.CompletedProcess[str]) -> str:
        user = f" as OS user {self.user.pw_name}" if self.user else ""
        return (
            f"{what} failed{user} (exit {result.returncode}) for {self.base_dir}:\n"
            f"{result.stdout.strip()}\n--- server log ---\n{self._log_tail()}"
        )


class ExternalServer:
    """A PostgreSQL server this process did not start and must not stop (``can_restart`` False)."""

    can_restart = False

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        self.url = url
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 5432

    def is_running(self) -> bool:
        """Return whether the server's TCP port takes connections."""
        return _accepts_tcp(self.host, self.port)

    accepts_connections = is_running

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise NotRestartable(
            f"{self.url} is not a server this test run started; run the tests with "
            "DJANGO_JOBS_TEST_PG=embedded, or use a PostgresCluster of your own"
        )

    start = stop = restart = _refuse

    def cleanup(self) -> None:
        """Do nothing: the server is not ours."""

    def __repr__(self) -> str:
        return f"<ExternalServer {self.url}>"


def server_under_test() -> PostgresCluster | ExternalServer:
    """Return a handle on the database of this test run: restartable only if run.py started it."""
    control = os.environ.get(CONTROL_ENV)
    if control:
        return PostgresCluster.attach(control)
    return ExternalServer(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))


if __name__ == "__main__":
    # Smoke test: python3 tests/support/pgcluster.py  -> start, restart, stop a throwaway cluster.
    started = time.monotonic()
    with PostgresCluster() as pg:
        print(f"started {pg!r} with {pg.bindir} in {time.monotonic() - started:.1f}s")
        mark = time.monotonic()
        pg.restart()
        print(f"restarted in {time.monotonic() - mark:.1f}s; accepts connections: "
              f"{pg.accepts_connections()}")
    print(f"stopped and removed; running: {pg.is_running()}")
