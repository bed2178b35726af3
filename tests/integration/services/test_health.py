"""Liveness from the health files: alive and turning, stalled, stale, gone."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_jobs.services.health import HealthFile, check, health_dir

NOW = 1_000_000.0


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Health files in a private temp dir, written as this (live) process."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    yield lambda worker_id: HealthFile("default", worker_id)


def test_check__turning_loop_and_fresh_beat_is_healthy(files):
    files("w1").write(loop_turned_at=NOW - 1, now=NOW - 0.5)
    [health] = check("default", "w1", stale_after=10, now=NOW)
    assert health.problem is None and health.pid == os.getpid()


def test_check__stalled_loop_with_a_live_heartbeat_says_so(files):
    files("w1").write(loop_turned_at=NOW - 30, now=NOW - 0.5)
    [health] = check("default", "w1", stale_after=10, now=NOW)
    assert health.problem is not None and "loop stalled, last turned 30s ago" in health.problem


def test_check__loop_waiting_on_a_lock_is_not_stalled(files):
    files("w1").write(loop_turned_at=NOW - 30, waiting_on_lock=True, now=NOW - 0.5)
    [health] = check("default", "w1", stale_after=10, now=NOW)
    assert health.problem is None


def test_check__stale_heartbeat_says_the_process_is_stopped_or_frozen(files):
    files("w1").write(loop_turned_at=NOW - 20, now=NOW - 20)
    [health] = check("default", "w1", stale_after=10, now=NOW)
    assert health.problem is not None and "heartbeat stale, last beat 20s ago" in health.problem


def test_check__dead_worker_counts_when_named_and_is_forgotten_otherwise(files):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    dead = files("dead")
    dead.write(loop_turned_at=NOW, now=NOW)
    dead.path.write_text(dead.path.read_text().replace(f'"pid": {os.getpid()}', f'"pid": {dead_pid}'))
    files("alive").write(loop_turned_at=NOW, now=NOW)

    [named] = check("default", "dead", stale_after=10, now=NOW)
    assert named.problem == f"worker dead is not running (pid {dead_pid} has exited)"
    assert [h.worker_id for h in check("default", stale_after=10, now=NOW)] == ["alive"]
    assert not dead.path.exists()


def test_check__no_worker_on_this_host_is_a_problem(files):
    [health] = check("default", stale_after=10, now=NOW)
    assert health.problem is not None and health.problem.startswith("no worker is running on this host")
    assert str(health_dir("default")) in health.problem


def test_jobs_health__exit_1_with_one_line_reason_and_0_when_healthy(files):
    files("w1").write(loop_turned_at=0, now=0)  # the epoch: long stale
    with pytest.raises(CommandError) as raised:
        call_command("jobs", "health", "--worker-id", "w1")
    assert raised.value.returncode == 1 and "heartbeat stale" in str(raised.value)
    assert "\n" not in str(raised.value)

    import time

    files("w1").write(loop_turned_at=time.time())
    out = io.StringIO()
    call_command("jobs", "health", "--worker-id", "w1", stdout=out)
    assert out.getvalue().startswith("ok worker=w1 ")


def test_jobs_health__stale_after_must_be_positive_seconds(files):
    with pytest.raises(CommandError, match="--stale-after takes a number of seconds > 0"):
        call_command("jobs", "health", "--stale-after", "0")
