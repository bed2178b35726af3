"""Liveness: whether this host's workers are alive and their loops turning, without the database.

Each worker's heartbeat thread rewrites a small JSON file on every beat (see ``HealthFile``): when
it beat, when the main loop last went round, and whether the loop is only waiting for a lock on
the server. ``manage.py jobs health`` reads these files (``check()``). It needs no database, so a
database outage, which workers ride out, never fails a container's liveness probe; a stopped
(SIGSTOP), frozen or stalled worker does.

The files live in ``<temp dir>/django_jobs-health/<database name>/``: the probe must run on the
same host (the same container) with the same ``TMPDIR`` as the worker.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.db import connections

from ..conf import jobs_settings
from ..log import log_event
from .rescue import pid_namespace


def health_dir(using: str) -> Path:
    """The directory of the health files of the workers using database ``using`` on this host."""
    name = str(connections[using].settings_dict.get("NAME") or using)
    return Path(tempfile.gettempdir()) / "django_jobs-health" / quote(name, safe="")


def default_stale_after() -> float:
    """How long a loop may go without turning (or the heartbeat without beating) and still be
    alive: half of ``RESCUE_AFTER``, when the heartbeat itself stops vouching for a stalled loop,
    and at least two heartbeat intervals."""
    return max(float(jobs_settings.RESCUE_AFTER) / 2, 2 * float(jobs_settings.HEARTBEAT_INTERVAL))


class HealthFile:
    """A worker's health file, written by its heartbeat thread."""

    def __init__(self, using: str, worker_id: str) -> None:
        self.worker_id = worker_id
        self.path = health_dir(using) / f"{quote(worker_id, safe='')}.json"
        self._failed = False

    def write(self, *, loop_turned_at: float, waiting_on_lock: bool = False, now: float | None = None) -> None:
        """Record a beat at ``now`` (wall-clock seconds, by default the time); never raises (a
        full disk is logged once)."""
        state = {"worker_id": self.worker_id, "pid": os.getpid(), "pid_namespace": pid_namespace(),
                 "beat_at": time.time() if now is None else now,
                 "loop_turned_at": loop_turned_at, "waiting_on_lock": waiting_on_lock}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".tmp")
            partial.write_text(json.dumps(state))
            os.replace(partial, self.path)  # a reader never sees half a file
            self._failed = False
        except OSError as exc:
            if not self._failed:
                log_event("health_file_failed", logging.WARNING, worker=self.worker_id, path=str(self.path),
                          error=str(exc), note="jobs health can't see this worker; set TMPDIR to a writable directory")
            self._failed = True

    def remove(self) -> None:
        """Remove the file (the worker is stopping)."""
        try:
            self.path.unlink()
        except OSError:
            pass


@dataclass(frozen=True)
class WorkerHealth:
    """What ``check()`` found for one worker: ``problem`` is None when it is alive and turning."""

    worker_id: str
    pid: int | None
    problem: str | None
    loop_age: float | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def _ours(state: dict[str, Any]) -> bool:
    """Whether the file's worker is in this PID namespace, where its pid means something."""
    return state.get("pid_namespace") == pid_namespace()


def _read(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _judge(state: dict[str, Any], now: float, stale_after: float) -> WorkerHealth:
    worker_id, pid = str(state.get("worker_id")), int(state.get("pid") or 0)
    beat_age = now - float(state.get("beat_at") or 0)
    loop_age = now - float(state.get("loop_turned_at") or 0)
    if _ours(state) and not _alive(pid):
        return WorkerHealth(worker_id, pid, f"worker {worker_id} is not running (pid {pid} has exited)")
    if beat_age > stale_after:
        return WorkerHealth(worker_id, pid, f"worker {worker_id} (pid {pid}): heartbeat stale, last beat "
                            f"{beat_age:.0f}s ago (over {stale_after:g}s): the process is stopped or frozen",
                            loop_age)
    if loop_age > stale_after and not state.get("waiting_on_lock"):
        return WorkerHealth(worker_id, pid, f"worker {worker_id} (pid {pid}): loop stalled, last turned "
                            f"{loop_age:.0f}s ago (over {stale_after:g}s)", loop_age)
    return WorkerHealth(worker_id, pid, None, loop_age)


def check(using: str, worker_id: str | None = None, *, stale_after: float | None = None,
          now: float | None = None) -> list[WorkerHealth]:
    """The health of worker ``worker_id``, or of every worker on this host (using ``using``).

    A worker that exited without removing its file (killed) counts only when asked for by id;
    otherwise its file is removed. Without an id, only the workers in this PID namespace count
    (a probe runs in its worker's container). No worker at all is a problem (a ``WorkerHealth`` with no pid).
    """
    stale_after = default_stale_after() if stale_after is None else stale_after
    now = time.time() if now is None else now
    if worker_id is not None:
        state = _read(HealthFile(using, worker_id).path)
        if state is None:
            return [WorkerHealth(worker_id, None, f"no worker {worker_id} is running on this host "
                                 f"(no health file in {health_dir(using)})")]
        return [_judge(state, now, stale_after)]
    found = []
    directory = health_dir(using)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        state = _read(path)
        if state is None or not _ours(state):
            continue  # another container's worker sharing this directory: its probe checks it
        health = _judge(state, now, stale_after)
        if health.pid is not None and not _alive(health.pid):
            path.unlink(missing_ok=True)  # killed long ago, or replaced: not this host's worker any more
            continue
        found.append(health)
    if not found:
        return [WorkerHealth("*", None, f"no worker is running on this host (no health file in {directory})")]
    return found
