"""The benchmark's arithmetic and its code export (bench/report.py, bench/code.py,
bench/round_trip.py), and bench/child_cpu.py's forked child; no database."""

from __future__ import annotations

import shutil

import pytest

from bench import code
from bench.report import judge_targets, percentile, summary, table_rows
from bench.round_trip import fit


def test_percentile__interpolates_between_closest_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 … 100

    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0


def test_round_trip_fit__splits_the_cost_per_job_from_the_cost_per_statement() -> None:
    # 16 µs a job and 300 µs a statement: 31 µs a job in batches of 20, 16.75 in batches of 400.
    line = fit({20: 31.0, 100: 19.0, 400: 16.75})

    assert line == (pytest.approx(16.0), pytest.approx(300.0))
    assert fit({100: 19.0}) is None  # one batch size can't tell the two apart


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


def _h_results(behind_ms: float, index_walk: bool) -> dict[str, object]:
    alone = {"p50_ms": 1.0, "times_ms": [1.0], "jobs_per_claim": [2]}
    behind = {"p50_ms": behind_ms, "times_ms": [behind_ms], "unknown": 10_000, "runnable": 1_000}
    return {
        "H": {
            "claim_alone": alone,
            "claim_set_aside": behind,
            "claim_set_aside_vs_alone": behind_ms / alone["p50_ms"],
            "claim_plan": {"worker_session": {"index_walk": index_walk}},
            "set_aside": {"claims": 100, "limit": 100, "set_aside": 10_000, "total_ms": summary([450.0, 500.0])},
            "first_claim_ms": summary([3.0]),
            "ready_idx_buffers": {"before": summary([4.0]), "after": summary([93.0, 266.0, 93.0])},
        }
    }


def test_judge_targets__rolling_claim_within_twice_its_time_alone_passes() -> None:
    verdicts = {t["key"]: t["result"] for t in judge_targets(_h_results(1.9, index_walk=True))}

    assert verdicts["H_claim_time"] == "PASS"
    assert verdicts["H_claim_plan"] == "PASS"


def test_judge_targets__rolling_claim_slower_than_twice_or_off_the_index_fails() -> None:
    verdicts = {t["key"]: t["result"] for t in judge_targets(_h_results(2.1, index_walk=False))}

    assert verdicts["H_claim_time"] == "FAIL"
    assert verdicts["H_claim_plan"] == "FAIL"


def test_table_rows__section_h_shows_its_figures_and_verdicts() -> None:
    results = _h_results(1.5, index_walk=True)
    results["targets"] = judge_targets(results)

    rows = {row[1]: row for row in table_rows(results) if row[0] == "H"}

    assert rows["… set aside / without them"][2] == "1.50"
    assert rows["… set aside / without them"][-1] == "PASS"
    assert rows["setting 10,000 aside: claims of 100"][2] == "100"
    assert rows["… their time in all"][2:5] == ["475", "450", "500"]  # median, min, max of the runs
    assert rows["… once set aside, before a VACUUM"][2:5] == ["93", "93", "266"]
    assert rows["claim: ready_idx, no Seq Scan"][2] == "yes"


def test_table_rows__a_skipped_section_says_why() -> None:
    results = {"H": {"skipped": "the measured django_jobs doesn't set aside unknown names"}}

    rows = table_rows(results)

    assert rows == [["H", "skipped: the measured django_jobs doesn't set aside unknown names", *[""] * 7]]


_PLAN = """Append  (actual time=0.871..2.028 rows=100 loops=1)
  Buffers: shared hit=1371 dirtied=1 written=1
  CTE claimable
    ->  Limit  (actual time=0.783..0.895 rows=100 loops=1)
          Buffers: shared hit=193
          ->  LockRows  (actual time=0.782..0.886 rows=100 loops=1)
                ->  Index Scan using django_jobs_ready_idx on django_jobs_job  (actual time=0.775..0.835 rows=100 loops=1)
                      Index Cond: (run_at <= '2026-12-06 08:48:32.967862+00'::timestamp with time zone)
                      Buffers: shared hit=90 read=3
  CTE parked
    ->  Nested Loop  (actual time=0.008..0.009 rows=0 loops=1)
          ->  Index Scan using django_jobs_job_pkey on django_jobs_job  (never executed)
                Index Cond: (id = claimable.id)
  CTE claimed
    ->  Nested Loop  (actual time=0.800..1.113 rows=100 loops=1)
          ->  Index Scan using django_jobs_job_pkey on django_jobs_job  (actual time=0.001..0.001 rows=1 loops=100)
                Index Cond: (id = claimable_1.id)
                Buffers: shared hit=300
Planning:
  Buffers: shared hit=24
Execution Time: 4.588 ms"""


def test_index_buffers__counts_each_index_walk_apart_from_the_writes() -> None:
    from bench.db import index_buffers

    assert index_buffers(_PLAN) == {"django_jobs_ready_idx": 93, "django_jobs_job_pkey": 300}


def test_child_cpu__a_forked_child_answers_every_job_and_its_cpu_and_calls_are_counted() -> None:
    from bench.child_cpu import BATCH, run_child

    # (bench.noop isn't registered here: the child answers each job at once, as not registered.)
    assert run_child(2) > 0
    assert 10 <= run_child(2, profile=True) / (2 * BATCH) <= 1000
