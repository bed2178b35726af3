"""The benchmark (bench/): a tiny run end to end, and its arithmetic. Timings are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import TARGETS
from tests.support import REPO


@pytest.mark.subprocess
def test_bench__tiny_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # pytest-django's; the harness sets bench.settings
    result = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--scale",
            "0.01",
            "--runs",
            "1",
            "--json",
            str(out),
            "--database",
            f"django_jobs_bench_test_{os.getpid()}",
            "--memory-budget",
            "60",
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"results: {out}" in result.stdout

    results = json.loads(out.read_text())
    for section in "ABCDEFGHIJKL":
        assert results.get(section), f"section {section} missing: {sorted(results)}"
        assert "error" not in results[section], results[section]["error"]
    assert {"enqueue_one_per_transaction", "enqueue_many"} <= set(results["A"])
    assert {"drain_1_process", "drain_2_processes"} <= set(results["B"])
    assert {"p50_ms", "p95_ms", "p99_ms", "max_ms"} <= set(results["C"]["immediate"])
    assert {"p50_ms", "p99_ms"} <= set(results["C"]["delayed"])
    # An idle worker's CPU share: measured, and a share (idle workers poll once a second).
    assert 0 <= results["C"]["idle_cpu"]["median"] < 1
    # The same probes through the bare loop (the pickup's floor): every one started, so a figure.
    assert results["C"]["raw_pickup_p50_ms"]["median"] > 0
    # The lean table's insert beside the full table's (issue 19).
    assert results["E"]["insert_lean_1_process"]["median"] > 0
    assert {"drain_2_processes", "ratio_to_B", "sizes", "explain", "dead_tuples", "churn_ratio"} <= set(
        results["D"]
    )
    # Churn: drains in a row with no VACUUM, so the dead tuples pile up, and each claim is measured.
    churn = results["D"]["churn"]
    assert churn[-1]["dead_tuples_before"] > churn[0]["dead_tuples_before"]
    assert churn[0]["claim"]["buffers"] > 0 and churn[-1]["claim"]["buffers"] > 0
    assert {"insert_1_process", "drain_2_processes", "drain_2_processes_1m", "slowdown_1m"} <= set(
        results["E"]
    )
    assert {"first", "last", "rss_growth"} <= set(results["F"])
    assert results["D"]["explain"]["uses_index"], results["D"]["explain"]
    # Flow control: B against the commit before it, keyed and rated jobs, the gated claim.
    flow = results["G"]
    assert {
        "before_drain_2_processes", "drain_2_processes", "now_vs_before", "keyed_drain", "unkeyed_drain",
        "keyed_vs_unkeyed", "rate_achieved", "rate_most_in_1s", "claim_empty", "claim_runnable", "claim_held",
    } <= set(flow)
    assert flow["baseline_commit"].startswith("4aba3d6")
    assert flow["keyed_overlaps"] == [0]  # concurrency=1: never two jobs of one key at once
    assert flow["claim_held"]["jobs_per_claim"] == [2]  # past the held key's jobs, to runnable ones
    assert flow["claim_plan"]["worker_session"]["uses_index"], flow["claim_plan"]["worker_session"]["plan"]
    # Rolling deploys: the plain claim past rows of a name no code registers, once set aside.
    rolling = results["H"]
    assert {"claim_alone", "claim_set_aside", "claim_set_aside_vs_alone", "set_aside"} <= set(rolling)
    assert rolling["set_aside"]["set_aside"] == rolling["set_aside"]["unknown"]
    assert rolling["claim_set_aside"]["jobs_per_claim"] == [2]  # runnable ones, past the set-aside rows
    assert rolling["claim_set_aside"]["set_aside_per_claim"] == [0]  # none left in its way
    assert rolling["claim_plan"]["worker_session"]["index_walk"], rolling["claim_plan"]["worker_session"]
    # Workflows: a fan-in against a plain drain, the release delay, the claim with waiting rows.
    assert {
        "plain_drain", "fan_in_drain", "fan_in_vs_plain", "release_after_drain_ms", "release_idle_ms",
        "claim_alone", "claim_waiting", "claim_waiting_vs_alone",
    } <= set(results["I"])
    assert results["I"]["claim_waiting"]["waiting"] >= 1_000
    # Charts: the overview per period, with charts drawn, and the per-minute statement.
    charts = results["J"]
    assert {"overview_hour_ms", "overview_day_ms", "overview_week_ms", "overview_worst_p50_ms", "record_ms"} <= set(
        charts
    )
    assert charts["overview_day_ms"]["charts"] >= 9 and charts["overview_day_ms"]["empty_charts"] == 0
    assert charts["record_statements"] == 1
    assert charts["sizes"]["samples"] > 2 * 24 * 60
    # Realistic mixes: ORM-write jobs against no-op ones, four queues on the same workers, a burst.
    mixes = results["K"]
    assert {
        "orm_drain", "orm_reconnect_drain", "noop_drain", "orm_vs_noop", "orm_reconnect_vs_noop",
        "short_pickup_p50_ms", "short_pickup_p99_ms", "longest_wait_s", "burst_enqueue_rate",
        "burst_drain_rate_during", "burst_tail_seconds",
    } <= set(mixes)
    assert mixes["orm_rows_not_once"] == [0, 0]  # each row written by its own job, exactly once
    queues = mixes["queues"]["runs"][0]
    assert set(queues) == {"k-1ms", "k-50ms", "k-1s", "k-mixed"}
    for queue, found in queues.items():
        assert found["enqueued"] > 0 and found["succeeded"] == found["enqueued"], (queue, found)
        assert {"per_second", "pickup_p50_ms", "pickup_p99_ms", "longest_wait_s"} <= set(found)
    assert mixes["burst_not_once"] == 0  # every job succeeded at its first attempt, its row read 1
    assert mixes["burst"]["done_by_last_enqueue"] <= mixes["burst_enqueue_rate"]["jobs"]
    # A big table: drains over it and without it, ours and the raw loop's; the admin's pages; pruning.
    big = results["L"]
    assert {
        "drain_2_processes", "drain_2_processes_empty", "raw_drain_2_processes", "raw_drain_2_processes_empty",
        "ratio", "raw_ratio", "page_overview_ms", "page_overview_recorded_ms", "page_jobs_ms", "page_jobs_succeeded_ms", "page_jobs_search_ms",
        "page_jobs_search_miss_ms", "jobs_worst_p50_ms", "prune_rows_per_minute", "prune_alone_rows_per_minute",
        "drain_prune_alone", "drain_prune_pruning", "prune_slowdown", "prune_paced_rows_per_minute",
        "drain_prune_paced", "prune_paced_slowdown",
    } <= set(big)
    assert big["explain"]["uses_index"], big["explain"]
    assert big["page_jobs_ms"]["rows"] == 50 and big["page_jobs_search_ms"]["rows"] == 50  # a full first page
    assert big["page_jobs_search_miss_ms"]["rows"] == 0
    assert all(p["deleted"] > 0 for mode in ("pruning", "paced") for p in big["prunes"][mode]), big["prunes"]
    assert big["finished_rows_after_pruning"] == big["finished_rows"]  # pruned rows were put back
    assert {t["key"] for t in results["targets"]} == {t.key for t in TARGETS}
    assert all(t["result"] in ("PASS", "FAIL") for t in results["targets"]), results["targets"]
    assert results["meta"]["machine"]["cpus"] and results["worker_logs"]["files"] > 0
