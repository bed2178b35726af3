"""Create or reuse the repository's ``.venv`` with ``django-jobs[dev]`` installed.

Shared by the two commands of the README, ``python3 example_project/demo.py`` and
``python3 tests/run.py``, which import it with nothing but the standard library, before any
virtualenv exists. It must therefore stay standard-library only, and importable on an older
Python long enough to say that 3.11 is needed.

The install is skipped while ``.venv/.django-jobs-bootstrap`` holds the hash of the current
``pyproject.toml`` (and of the extras and interpreter version); editing pyproject.toml, or
deleting that file, reinstalls on the next run. A lock file inside ``.venv`` keeps two
commands started at once from building the same venv together.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
MARKER = VENV / ".django-jobs-bootstrap"
LOCK = VENV / ".django-jobs-bootstrap.lock"
MIN_PYTHON = (3, 11)


class BootstrapError(RuntimeError):
    """The virtualenv could not be created or installed into."""


def say(message: str) -> None:
    """Print a progress line, prefixed with the running script's name."""
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(REPO) if script.is_relative_to(REPO) else script.name
    print(f"{name}: {message}", flush=True)


def require_python() -> None:
    """Exit with a clear message when this interpreter is too old for the project."""
    if sys.version_info < MIN_PYTHON:
        wanted = ".".join(map(str, MIN_PYTHON))
        sys.exit(f"django-jobs needs Python {wanted} or newer; this is {sys.version.split()[0]} "
                 f"({sys.executable}). Run the command with python{wanted} or newer.")


def venv_python(venv: Path = VENV) -> Path:
    """Return the path of the virtualenv's interpreter (it may not exist yet)."""
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


@contextlib.contextmanager
def _locked(venv: Path = VENV):
    venv.mkdir(exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no concurrent-bootstrap protection.
        yield
        return
    with open(venv / LOCK.name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _venv_version(python: Path) -> tuple[int, int] | None:
    """Return the venv interpreter's (major, minor), or None when it does not run."""
    if not python.exists():
        return None
    try:
        result = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    except OSError:
        return None
    if result.returncode != 0:
        return None
    major, minor = result.stdout.split()
    return int(major), int(minor)


def _fingerprint(extras: str, version: tuple[int, int], requirements: tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes())
    digest.update(f"\0extras={extras}\0python={version[0]}.{version[1]}".encode())
    if requirements:
        digest.update(f"\0requirements={' '.join(requirements)}".encode())
    return digest.hexdigest()


def _run(argv: list[str], what: str) -> None:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise BootstrapError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}")


def _create_venv(clear: bool, venv: Path = VENV, interpreter: str | None = None) -> None:
    argv = [interpreter or sys.executable, "-m", "venv", *(["--clear"] if clear else []), str(venv)]
    python = interpreter or f"Python {sys.version.split()[0]} ({sys.executable})"
    say(f"creating {venv.relative_to(REPO)} with {python}")
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        hint = ""
        if "ensurepip" in result.stdout + result.stderr:
            hint = ("\nThis Python has no ensurepip; on Debian/Ubuntu install it with "
                    "`apt-get install python3-venv`.")
        raise BootstrapError(f"could not create {venv}:\n{result.stdout}{result.stderr}{hint}")


def ensure_venv(
    extras: str = "dev",
    *,
    venv: Path = VENV,
    interpreter: str | None = None,
    requirements: tuple[str, ...] = (),
    min_python: tuple[int, int] = MIN_PYTHON,
) -> Path:
    """Create ``.venv`` if needed, install ``django-jobs[extras]`` if needed; return its python.

    ``venv``, ``interpreter``, ``requirements`` (pip requirements installed with it) and
    ``min_python`` make another one: tests/run.py's Django 6 venv.
    """
    require_python()
    python = venv_python(venv)
    marker = venv / MARKER.name
    with _locked(venv):
        version = _venv_version(python)
        if version is None or version < min_python:
            # Missing, broken (its base interpreter was removed) or too old: (re)build it.
            _create_venv(python.exists(), venv, interpreter)
            version = _venv_version(python)
            if version is None:
                raise BootstrapError(f"{python} does not run after creating the venv")
        wanted = _fingerprint(extras, version, requirements)
        try:
            installed = marker.read_text().strip()
        except OSError:
            installed = ""
        if installed != wanted:
            reason = "first install" if not installed else "pyproject.toml changed"
            what = " ".join([f"django-jobs[{extras}]", *requirements])
            say(f"installing {what} into {venv.relative_to(REPO)} ({reason}) ...")
            marker.unlink(missing_ok=True)
            _run([str(python), "-m", "pip", "install", "--quiet", "-e", f"{REPO}[{extras}]",
                  *requirements], "pip install")
            marker.write_text(wanted + "\n")
    return python


def pip_install(*requirements: str) -> None:
    """Install extra requirements into ``.venv`` (which must exist)."""
    with _locked():
        _run([str(venv_python()), "-m", "pip", "install", "--quiet", *requirements],
             f"pip install {' '.join(requirements)}")

