"""The default concurrency: the CPUs the worker may use, not the host's."""

from __future__ import annotations

import os
from pathlib import Path

from django_jobs.worker.cpus import available_cpus, cgroup_cpu_quota


def _v2(tmp_path: Path, path: str, cpu_max: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for directory, value in cpu_max.items():
        (root / directory).mkdir(parents=True, exist_ok=True)
        (root / directory / "cpu.max").write_text(value + "\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(f"0::{path}\n")
    return root, proc


def test_cgroup_v2__quota_of_the_own_cgroup_in_cpus(tmp_path):
    root, proc = _v2(tmp_path, "/kubepods/pod1", {"kubepods/pod1": "150000 100000", "": "max 100000"})
    assert cgroup_cpu_quota(root, proc) == 1.5


def test_cgroup_v2__a_tighter_parent_wins(tmp_path):
    root, proc = _v2(tmp_path, "/a/b", {"a/b": "400000 100000", "a": "200000 100000"})
    assert cgroup_cpu_quota(root, proc) == 2.0


def test_cgroup_v2__max_means_no_quota(tmp_path):
    root, proc = _v2(tmp_path, "/", {"": "max 100000"})
    assert cgroup_cpu_quota(root, proc) is None


def test_cgroup_v1__cfs_quota_over_period(tmp_path):
    directory = tmp_path / "cgroup" / "cpu,cpuacct" / "docker" / "abc"
    directory.mkdir(parents=True)
    (directory / "cpu.cfs_quota_us").write_text("50000\n")
    (directory / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
    assert cgroup_cpu_quota(tmp_path / "cgroup", proc) == 0.5


def test_available_cpus__rounds_a_fractional_quota_up_and_never_exceeds_the_affinity(tmp_path):
    root, proc = _v2(tmp_path, "/", {"": "50000 100000"})
    assert available_cpus(root, proc) == 1
    root, proc = _v2(tmp_path / "big", "/", {"": f"{1000 * 100000} 100000"})
    assert available_cpus(root, proc) == len(os.sched_getaffinity(0))


def test_available_cpus__without_cgroups_is_the_affinity(tmp_path):
    assert available_cpus(tmp_path / "none", tmp_path / "missing") == len(os.sched_getaffinity(0))
