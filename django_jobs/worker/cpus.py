"""How many CPUs this process may use: the default ``--concurrency``.

``os.cpu_count()`` is the host's count. In a container limited to two CPUs on a 64-core node it
says 64, and a worker starting 64 children (64 database connections) would be throttled to two.
What counts is the affinity mask (``taskset``, cpusets) and the cgroup's CPU quota (Kubernetes'
``resources.limits.cpu``, ``docker run --cpus``), rounded up.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """The CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cgroup_cpu_quota(cgroup_root: Path, proc_cgroup: Path) -> float | None:
    """The CPU quota (in CPUs) of this process's cgroup or of any cgroup above it, the tightest
    one; None without a quota (or without cgroups)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _hierarchy, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: cpu.max holds "<quota> <period>" or "max <period>"
            quotas += [_v2_quota(directory / "cpu.max") for directory in _upwards(cgroup_root, path)]
        elif "cpu" in controllers.split(","):  # cgroup v1: cpu.cfs_quota_us (-1: none) / period
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                for directory in _upwards(cgroup_root / mount, path):
                    quotas.append(_v1_quota(directory))
    found = [q for q in quotas if q is not None]
    return min(found) if found else None


def _upwards(root: Path, path: str) -> list[Path]:
    """``root/path`` and each directory above it up to ``root`` (a parent's limit applies too).

    Inside a container's cgroup namespace the path is ``/`` and ``root`` is its own cgroup."""
    parts = [p for p in path.strip("/").split("/") if p and p != ".."]
    return [root.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _v2_quota(cpu_max: Path) -> float | None:
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period
