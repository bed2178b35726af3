"""Which django_jobs code a run measures: the working tree, or a commit exported on its own.

The working tree is shared and changes under a long run (a commit, a new migration), so a run can
pin a commit instead (``--at REV``): ``git archive`` exports its ``django_jobs/`` into a temporary
directory that comes first on the harness's and the workers' import path. The bench itself
(harness, settings, jobs) always comes from the working tree.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> bytes:
    result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.decode().strip()}")
    return result.stdout


def export(rev: str) -> tuple[Path, str]:
    """Extract ``django_jobs/`` as of ``rev`` into a new temporary directory; return it and the
    full commit id."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}").decode().strip()
    archive = _git("archive", "--format=tar", commit, "django_jobs")
    root = Path(tempfile.mkdtemp(prefix="django_jobs_bench_code-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return root, commit


def fingerprint(root: Path) -> str:
    """A digest of every file under ``root/django_jobs`` (to notice the code changing mid-run)."""
    digest = hashlib.sha256()
    for path in sorted((root / "django_jobs").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
