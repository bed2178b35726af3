"""``manage.py runjobs`` subprocesses of the bench settings, and their memory per /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class Runjobs:
    """A ``runjobs ARGS…`` process (and its children) writing its output to a file."""

    def __init__(self, args: list[str], log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        """``extra_env``: variables to set for it on top of the harness's own."""
        self.args = args
        self.log_path = log_path
        # ``python -m django`` is what manage.py runs. Started in the measured code's directory,
        # which -m puts first on the path; the bench package comes from the repository (code.py).
        code_dir = os.environ.get("BENCH_CODE_DIR", str(REPO))
        env = dict(os.environ, **(extra_env or {}))
        env.update(DJANGO_SETTINGS_MODULE="bench.settings", PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "django", "runjobs", *args],
                cwd=code_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so a kill reaches the forked children too.
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float) -> int:
        """Wait for the worker to exit; past ``timeout``, kill it and raise TimeoutError."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(
                f"runjobs {' '.join(self.args)} did not exit within {timeout:g}s "
                f"(log: {self.log_path})"
            ) from None

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a graceful stop) and wait for the exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)

    def memory(self) -> dict[str, Any]:
        """VmRSS and Pss (kB) of the worker and every process below it, and their sum.

        RSS counts pages shared between the parent and its forked children once per process;
        PSS splits them, so its sum is what the family really occupies. Both are reported.
        """
        processes = []
        for pid in process_tree(self.pid):
            rss = _status_kb(pid, "VmRSS")
            if rss is None:
                continue  # exited meanwhile
            processes.append({"pid": pid, "rss_kb": rss, "pss_kb": _pss_kb(pid)})
        return {
            "rss_kb": sum(p["rss_kb"] for p in processes),
            "pss_kb": sum(p["pss_kb"] or 0 for p in processes),
            "processes": processes,
        }


    def cpu_seconds(self) -> float:
        """CPU time (user + system) the worker and every process below it have used so far."""
        total = 0
        for pid in process_tree(self.pid):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from each process's parent pid in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: fields resume after the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _pss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
