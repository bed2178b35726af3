"""The benchmark's arithmetic and its code export (bench/report.py, bench/code.py); nothing runs."""

from __future__ import annotations

import shutil

import pytest

from bench import code
from bench.report import judge_targets, percentile, summary


def test_percentile__interpolates_between_closest_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 … 100

    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0


def test_judge_targets__missing_figures_are_not_judged() -> None:
    results = {"B": {"drain_2_processes": summary([6000.0, 4000.0, 5500.0])}}

    verdicts = {t["key"]: t["result"] for t in judge_targets(results)}

    assert verdicts["B2_rate"] == "PASS"  # the median, 5,500, meets 5,000
    assert verdicts["B2_vs_E"] == "n/a"


def test_code_export__pins_django_jobs_at_a_commit() -> None:
    root, commit = code.export("HEAD")
    try:
        assert (root / "django_jobs" / "__init__.py").is_file()
        assert not (root / "bench").exists()  # the bench itself always comes from the tree
        assert len(commit) == 40
        assert code.fingerprint(root) == code.fingerprint(root)
    finally:
        shutil.rmtree(root)
