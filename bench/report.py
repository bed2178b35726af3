"""Figures, the issue's targets and the final table. Pure functions over the results dict."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def summary(values: list[float]) -> dict[str, Any]:
    """Median, min and max of one figure's runs (and the runs themselves)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100), linearly interpolated between the closest ranks."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median_of(
    results: dict[str, Any], section: str, figure: str, key: str = "median"
) -> float | None:
    """``results[section][figure][key]``, or None when that part did not run or failed."""
    value = results.get(section, {}).get(figure)
    if isinstance(value, dict):
        value = value.get(key)
    return value if isinstance(value, (int, float)) else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# -- targets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One of issue 7's targets: what it says, and how to read the value it is about."""

    key: str
    text: str
    value: Callable[[dict[str, Any]], float | None]
    bound: Callable[[dict[str, Any]], float | None]
    higher_is_better: bool = True
    unit: str = ""

    def judge(self, results: dict[str, Any]) -> dict[str, Any]:
        value, bound = self.value(results), self.bound(results)
        if value is None or bound is None:
            verdict = "n/a"
        else:
            ok = value >= bound if self.higher_is_better else value <= bound
            verdict = "PASS" if ok else "FAIL"
        return {
            "key": self.key,
            "target": self.text,
            "value": value,
            "bound": bound,
            "unit": self.unit,
            "result": verdict,
        }


def _const(x: float) -> Callable[[dict[str, Any]], float]:
    return lambda r: x


def _flag(x: bool | None) -> float | None:
    return None if x is None else float(x)


TARGETS = [
    Target(
        "B2_rate",
        "B, 2 processes ≥ 5,000 jobs/s",
        lambda r: median_of(r, "B", "drain_2_processes"),
        _const(5000),
        unit="jobs/s",
    ),
    Target(
        "B2_vs_E",
        "B, 2 processes ≥ 65% of E",
        lambda r: ratio(
            median_of(r, "B", "drain_2_processes"), median_of(r, "E", "drain_2_processes")
        ),
        _const(0.65),  # issue 19 (issue 7 asked for 40%)
        unit="ratio",
    ),
    Target(
        "A_vs_E",
        "A, enqueue() ≥ 75% of E's insert rate",
        lambda r: ratio(
            median_of(r, "A", "enqueue_one_per_transaction"), median_of(r, "E", "insert_1_process")
        ),
        _const(0.75),
        unit="ratio",
    ),
    Target(
        "A_vs_lean",
        "A, enqueue() ≥ 75% of the lean table's insert",
        lambda r: ratio(
            median_of(r, "A", "enqueue_one_per_transaction"), median_of(r, "E", "insert_lean_1_process")
        ),
        _const(0.75),  # issue 19
        unit="ratio",
    ),
    Target(
        "A_many",
        "A, enqueue_many ≥ 50,000 jobs/s",
        lambda r: median_of(r, "A", "enqueue_many"),
        _const(50000),
        unit="jobs/s",
    ),
    Target(
        "C_p50",
        "C, pickup p50 ≤ 1 ms",
        lambda r: median_of(r.get("C", {}), "immediate", "p50_ms"),
        _const(1.0),  # issue 19 (issue 7: 2 ms)
        False,
        "ms",
    ),
    Target(
        "C_p99",
        "C, pickup p99 ≤ 5 ms",
        lambda r: median_of(r.get("C", {}), "immediate", "p99_ms"),
        _const(5.0),  # issue 19 (issue 7: 10 ms)
        False,
        "ms",
    ),
    Target(
        "C_idle",
        "C, an idle worker ≤ 1% of a core",
        lambda r: median_of(r, "C", "idle_cpu"),
        _const(0.01),  # issue 19: "an idle worker's CPU stays near zero"
        False,
        "share",
    ),
    Target(
        "C_delayed_p99",
        "C, delayed lateness p99 ≤ 50 ms",
        lambda r: median_of(r.get("C", {}), "delayed", "p99_ms"),
        _const(50.0),
        False,
        "ms",
    ),
    Target(
        "D_slowdown",
        "D, B→D slowdown no worse than E's",
        lambda r: r.get("D", {}).get("ratio_to_B"),
        lambda r: r.get("E", {}).get("slowdown_1m"),
        unit="ratio",
    ),
    Target(
        "F_growth",
        "F, RSS growth < 10%",
        lambda r: r.get("F", {}).get("rss_growth"),
        _const(0.10),
        False,
        "ratio",
    ),
    Target(
        "G_before",
        "G, no limits: B now ≥ 90% of before",
        lambda r: r.get("G", {}).get("now_vs_before"),
        _const(0.90),
        unit="ratio",
    ),
    Target(
        "G_keyed",
        "G, concurrency=1 × 100 keys ≥ 50% of unlimited",
        lambda r: r.get("G", {}).get("keyed_vs_unkeyed"),
        _const(0.50),
        unit="ratio",
    ),
    Target(
        "G_rate",
        "G, rate 200/s: ≥ 190 starts/s",
        lambda r: median_of(r, "G", "rate_achieved"),
        lambda r: 0.95 * r["G"]["rate_achieved"]["limit"] if "rate_achieved" in r.get("G", {}) else None,
        unit="starts/s",
    ),
    Target(
        "G_rate_max",
        "G, rate 200/s: ≤ 200 in any 1 s, every run",
        lambda r: median_of(r, "G", "rate_most_in_1s", "max"),
        lambda r: r["G"]["rate_most_in_1s"]["limit"] if "rate_most_in_1s" in r.get("G", {}) else None,
        False,
        "starts",
    ),
    Target(
        "G_claim_plan",
        "G, gated claim walks keyed_idx, no Seq Scan",
        lambda r: _flag(r.get("G", {}).get("claim_plan", {}).get("worker_session", {}).get("index_walk")),
        _const(1.0),
        unit="yes/no",
    ),
    Target(
        "G_claim_time",
        "G, claim behind 100,000 held ≤ 2× without",
        lambda r: r.get("G", {}).get("claim_held_vs_runnable"),
        _const(2.0),
        False,
        "ratio",
    ),
    Target(
        "H_claim_plan",
        "H, claim walks ready_idx, no Seq Scan",
        lambda r: _flag(r.get("H", {}).get("claim_plan", {}).get("worker_session", {}).get("index_walk")),
        _const(1.0),
        unit="yes/no",
    ),
    Target(
        "H_claim_time",
        "H, claim behind 10,000 set aside ≤ 2× without",
        lambda r: r.get("H", {}).get("claim_set_aside_vs_alone"),
        _const(2.0),
        False,
        "ratio",
    ),
    Target(
        "I_fan_in",
        "I, fan-in of 10,000 drains ≥ 80% of plain",
        lambda r: r.get("I", {}).get("fan_in_vs_plain"),
        _const(0.80),
        unit="ratio",
    ),
    Target(
        "I_release",
        "I, downstream starts ≤ 100 ms after the last upstream (p50)",
        lambda r: median_of(r, "I", "release_idle_ms"),
        _const(100.0),
        False,
        "ms",
    ),
    Target(
        "I_claim",
        "I, claim with 100,000 waiting rows ≤ 1.25× without",
        lambda r: r.get("I", {}).get("claim_waiting_vs_alone"),
        _const(1.25),
        False,
        "ratio",
    ),
    Target(
        "J_overview",
        "J, overview with 1,000,000 jobs and full charts, p50 ≤ 200 ms",
        lambda r: r.get("J", {}).get("overview_worst_p50_ms"),
        _const(200.0),
        False,
        "ms",
    ),
    Target(
        "L_claim",
        "L, drain over the big table / without, no worse than E's",
        lambda r: r.get("L", {}).get("ratio"),
        lambda r: r.get("L", {}).get("raw_ratio"),
        unit="ratio",
    ),
    Target(
        "L_overview",
        "L, overview over the big table, p50 ≤ 200 ms",
        lambda r: median_of(r, "L", "page_overview_recorded_ms") or median_of(r, "L", "page_overview_ms"),
        _const(200.0),
        False,
        "ms",
    ),
    Target(
        "L_jobs",
        "L, job list: all, succeeded, a search, p50 ≤ 200 ms",
        lambda r: r.get("L", {}).get("jobs_worst_p50_ms"),
        _const(200.0),
        False,
        "ms",
    ),
    Target(
        "L_search_miss",
        "L, job list, a search no job matches, p50 ≤ 200 ms",
        lambda r: median_of(r, "L", "page_jobs_search_miss_ms"),
        _const(200.0),
        False,
        "ms",
    ),
    Target(
        "L_prune_rate",
        "L, pruning flat out during a drain ≥ 1,000,000 rows/min",
        lambda r: median_of(r, "L", "prune_rows_per_minute"),
        _const(1_000_000),
        unit="rows/min",
    ),
    Target(
        "L_prune_paced_rate",
        "L, paced pruning kept ≥ 1,000,000 rows/min during a drain",
        lambda r: median_of(r, "L", "prune_paced_rows_per_minute"),
        _const(1_000_000),
        unit="rows/min",
    ),
    Target(
        "L_prune_slowdown",
        "L, drain while pruning 1,000,000 rows/min ≥ 90% of without",
        lambda r: r.get("L", {}).get("prune_paced_slowdown"),
        _const(0.90),
        unit="ratio",
    ),
    Target(
        "J_record",
        "J, per-minute write: 1 statement per worker",
        lambda r: r.get("J", {}).get("record_statements"),
        _const(1.0),
        False,
        "statements",
    ),
]


TARGETS += [
    Target(
        "K_orm_once",
        "K, ORM writes: every job's row updated exactly once",
        lambda r: max(r["K"]["orm_rows_not_once"]) if r.get("K", {}).get("orm_rows_not_once") else None,
        _const(0),
        False,
        "rows",
    ),
    Target(
        "K_starve",
        "K, four queues: none starves (each finishes jobs, none waits > 5 s)",
        lambda r: _flag(r.get("K", {}).get("no_queue_starves")),
        _const(1.0),
        unit="yes/no",
    ),
    Target(
        "K_burst_once",
        "K, burst: every job succeeded once, its row updated once",
        lambda r: r.get("K", {}).get("burst_not_once"),
        _const(0),
        False,
        "jobs",
    ),
]


def judge_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [t.judge(results) for t in TARGETS]


# -- the table -------------------------------------------------------------------------------------


def _rate(x: float) -> str:
    return f"{x:,.0f}"


def _ms(x: float) -> str:
    return f"{x:,.2f}" if x < 100 else f"{x:,.0f}"


def _pct(x: float) -> str:
    return f"{x:.0%}" if x < 2 else f"{x:.1f}×"


def _share(x: float) -> str:
    return f"{x:.2%}"


def _mb(mb: float) -> str:
    return f"{mb:,.1f}"


def _ratio(x: float) -> str:
    return f"{x:.2f}"


def _growth(x: float) -> str:
    return f"{x:+.1%}"


def _rate1(x: float) -> str:
    return f"{x:,.1f}"


def _yes(x: float) -> str:
    return "yes" if x else "no"


def _count(x: float) -> str:
    return f"{x:,.0f}"


def _seconds(x: float) -> str:
    return f"{x:,.2f}"


# Per section: (figure key, label, unit, formatter, E counterpart figure key, target key).
_FIGURES: dict[str, list[tuple[str, str, str, Callable[[float], str], str | None, str | None]]] = {
    "A": [
        (
            "enqueue_one_per_transaction",
            "enqueue(), one per transaction",
            "jobs/s",
            _rate,
            "insert_1_process",
            "A_vs_E",
        ),
        (
            "enqueue_one_per_transaction",
            "… against the lean table's insert",
            "jobs/s",
            _rate,
            "insert_lean_1_process",
            "A_vs_lean",
        ),
        ("enqueue_many", "enqueue_many()", "jobs/s", _rate, "insert_1_process", "A_many"),
    ],
    "C": [
        ("idle_cpu", "an idle worker's CPU (with its children)", "of a core", _share, None, "C_idle"),
    ],
    "B": [
        ("drain_1_process", "drain, 1 runjobs process", "jobs/s", _rate, "drain_1_process", None),
        (
            "drain_2_processes",
            "drain, 2 runjobs processes",
            "jobs/s",
            _rate,
            "drain_2_processes",
            "B2_rate",
        ),
    ],
    "D": [
        (
            "drain_2_processes",
            "drain, 2 processes, + finished rows",
            "jobs/s",
            _rate,
            "drain_2_processes_1m",
            None,
        ),
    ],
    "G": [
        ("before_drain_2_processes", "B's drain, 2 processes, before flow control", "jobs/s", _rate, None, None),
        ("drain_2_processes", "B's drain, 2 processes, now", "jobs/s", _rate, None, None),
        ("now_vs_before", "B now / before, 2 processes", "ratio", _ratio, None, "G_before"),
        ("unkeyed_drain", "drain, 100 keys, no limit", "jobs/s", _rate, None, None),
        ("keyed_drain", "drain, 100 keys, concurrency=1 per key", "jobs/s", _rate, None, None),
        ("keyed_vs_unkeyed", "concurrency=1 per key / no limit", "ratio", _ratio, None, "G_keyed"),
        ("rate_achieved", "rate=\"200/s\": starts per second", "starts/s", _rate1, None, "G_rate"),
        ("rate_most_in_1s", "rate=\"200/s\": most starts in 1 s", "starts", _count, None, "G_rate_max"),
    ],
    "I": [
        ("plain_drain", "drain of 10,000, 2 processes", "jobs/s", _rate, None, None),
        ("fan_in_drain", "… the same, a job waiting on all of them", "jobs/s", _rate, None, None),
        ("fan_in_vs_plain", "fan-in / plain", "ratio", _ratio, None, "I_fan_in"),
        ("release_idle_ms", "last upstream outcome → downstream claim, idle workers", "ms", _ms, None, "I_release"),
        ("release_after_drain_ms", "… at the end of the fan-in's drain", "ms", _ms, None, None),
    ],
    "J": [
        ("overview_hour_ms", "overview, last hour's charts", "ms", _ms, None, None),
        ("overview_day_ms", "overview, last day's charts", "ms", _ms, None, None),
        ("overview_week_ms", "overview, last week's charts", "ms", _ms, None, None),
        ("overview_worst_p50_ms", "overview, the slowest period's p50", "ms", _ms, None, "J_overview"),
        ("record_ms", "per-minute statement, recording a minute", "ms", _ms, None, None),
        ("record_statements", "… its statements", "statements", _count, None, "J_record"),
    ],
    "L": [
        ("drain_2_processes", "drain, 2 processes, over the big table", "jobs/s", _rate, None, None),
        ("drain_2_processes_empty", "… the same, table emptied", "jobs/s", _rate, None, None),
        ("ratio", "… over the big table / emptied", "ratio", _ratio, None, "L_claim"),
        ("raw_drain_2_processes", "raw loop's drain, over the big table", "jobs/s", _rate, None, None),
        ("raw_drain_2_processes_empty", "… the same, table emptied", "jobs/s", _rate, None, None),
        ("raw_ratio", "… over the big table / emptied", "ratio", _ratio, None, None),
        ("page_overview_ms", "overview, no chart minutes recorded", "ms", _ms, None, None),
        ("page_overview_recorded_ms", "overview, the last hour's minutes recorded", "ms", _ms, None, "L_overview"),
        ("page_jobs_ms", "job list", "ms", _ms, None, None),
        ("page_jobs_succeeded_ms", "job list, status succeeded", "ms", _ms, None, None),
        ("page_jobs_search_ms", "job list, search matching every row", "ms", _ms, None, None),
        ("jobs_worst_p50_ms", "job list, the slowest of those three's p50", "ms", _ms, None, "L_jobs"),
        ("page_jobs_search_miss_ms", "job list, search matching no row", "ms", _ms, None, "L_search_miss"),
        ("prune_alone_rows_per_minute", "pruning flat out, alone", "rows/min", _rate, None, None),
        ("prune_rows_per_minute", "pruning flat out, while a drain runs", "rows/min", _rate, None, "L_prune_rate"),
        ("prune_paced_rows_per_minute", "pruning paced to 1,000,000/min, while a drain runs", "rows/min", _rate,
         None, "L_prune_paced_rate"),
        ("drain_prune_alone", "drain, 2 processes, no pruning", "jobs/s", _rate, None, None),
        ("drain_prune_pruning", "… while pruning flat out", "jobs/s", _rate, None, None),
        ("prune_slowdown", "… while pruning flat out / without", "ratio", _ratio, None, None),
        ("drain_prune_paced", "… while pruning 1,000,000/min", "jobs/s", _rate, None, None),
        ("prune_paced_slowdown", "… while pruning 1,000,000/min / without", "ratio", _ratio, None,
         "L_prune_slowdown"),
    ],
    "E": [
        ("insert_1_process", "raw INSERT, 1 process", "jobs/s", _rate, None, None),
        ("insert_2_processes", "raw INSERT, 2 processes", "jobs/s", _rate, None, None),
        ("insert_lean_1_process", "raw INSERT into the lean table, 1 process", "jobs/s", _rate, None, None),
        ("drain_1_process", "raw drain, 1 process", "jobs/s", _rate, None, None),
        ("drain_2_processes", "raw drain, 2 processes", "jobs/s", _rate, None, None),
        (
            "drain_2_processes_1m",
            "raw drain, 2 processes, + finished rows",
            "jobs/s",
            _rate,
            None,
            None,
        ),
    ],
}


def table_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per figure: section, figure, median, min, max, unit, vs E, target, result."""
    verdicts = {t["key"]: t["result"] for t in results.get("targets", [])}
    texts = {t.key: t.text.split(", ", 1)[1] for t in TARGETS}
    rows: list[list[str]] = []

    def add(
        section: str,
        label: str,
        fig: Any,
        unit: str,
        fmt: Callable[[float], str],
        vs_e: float | None = None,
        target: str | None = None,
    ) -> None:
        if isinstance(fig, dict) and "median" in fig:
            cells = [fmt(fig["median"]), fmt(fig["min"]), fmt(fig["max"])]
        elif isinstance(fig, (int, float)):
            cells = [fmt(fig), "", ""]
        else:
            cells = ["—", "", ""]
        judged = [texts[target], verdicts.get(target, "n/a")] if target else ["", ""]
        rows.append([section, label, *cells, unit, _pct(vs_e) if vs_e is not None else "", *judged])

    for section in "ABCDEFGHIJKL":
        part = results.get(section)
        if not part:
            continue
        if "error" in part:
            rows.append([section, f"ERROR: {part['error']}"[:70], "", "", "", "", "", "", ""])
        if "skipped" in part:
            rows.append([section, f"skipped: {part['skipped']}"[:70], "", "", "", "", "", "", ""])
        for key, label, unit, fmt, e_key, target in _FIGURES.get(section, []):
            if key in part:
                vs_e = (
                    ratio(median_of(results, section, key), median_of(results, "E", e_key))
                    if e_key
                    else None
                )
                add(section, label, part[key], unit, fmt, vs_e, target)
        if section == "L" and "finished_rows" in part:
            rows.insert(len(rows) - len([k for k, *_ in _FIGURES["L"] if k in part]),
                        ["L", "finished rows in the table", _count(part["finished_rows"]), "", "", "rows", "", "", ""])
        if section == "C":
            for phase, what, targets in (
                ("immediate", "pickup", {"p50": "C_p50", "p99": "C_p99"}),
                ("delayed", "delayed lateness", {"p99": "C_delayed_p99"}),
            ):
                for q in ("p50", "p95", "p99", "max"):
                    if f"{q}_ms" in part.get(phase, {}):
                        add(
                            "C",
                            f"{what} {q}",
                            part[phase][f"{q}_ms"],
                            "ms",
                            _ms,
                            target=targets.get(q),
                        )
            for q in ("p50", "p99"):
                if f"raw_pickup_{q}_ms" in part:
                    add("C", f"pickup {q}, the bare loop (LISTEN, claim, child)", part[f"raw_pickup_{q}_ms"], "ms", _ms)
        if section == "B":
            b2_vs_e = next(t.value(results) for t in TARGETS if t.key == "B2_vs_E")
            if b2_vs_e is not None:
                add("B", "2 processes as a share of E", b2_vs_e, "ratio", _pct, target="B2_vs_E")
        if section == "D" and "ratio_to_B" in part:
            add(
                "D",
                "throughput ratio B→D",
                part["ratio_to_B"],
                "ratio",
                _ratio,
                target="D_slowdown",
            )
        if section == "D" and "churn_last" in part:
            add("D", f"drain after {len(part['churn']) - 1} drains, no VACUUM", part["churn_last"], "jobs/s", _rate)
            add("D", "churn ratio, last drain / first", part["churn_ratio"], "ratio", _ratio)
            first, last = part["churn"][0]["claim"], part["churn"][-1]["claim"]
            if first and last:
                add("D", "one claim of 100, before the first", first["ms"], "ms", _ms)
                add("D", f"… with {part['churn_dead_tuples']:,} dead tuples", last["ms"], "ms", _ms)
        if section == "E" and "slowdown_1m" in part:
            add("E", "throughput ratio, + finished rows", part["slowdown_1m"], "ratio", _ratio)
        if section == "F":
            for point in ("first", "last"):
                if point in part:
                    add(
                        "F",
                        f"worker RSS after {part[point]['jobs']:,} jobs",
                        part[point]["memory"]["rss_kb"] / 1024,
                        "MB",
                        _mb,
                    )
            if "rss_growth" in part:
                add("F", "RSS growth", part["rss_growth"], "ratio", _growth, target="F_growth")
        if section == "G":
            held = part.get("claim_held", {})
            for key, label in (
                ("claim_empty", "gated claim of 2, p50, empty table"),
                ("claim_runnable", f"… {held.get('runnable', 0):,} runnable jobs of 100 keys"),
                ("claim_held", f"… + {held.get('held', 0):,} held jobs ahead of them"),
            ):
                if key in part:
                    add("G", label, part[key]["p50_ms"], "ms", _ms)
            if "claim_held_vs_runnable" in part:
                add("G", "… held / without them", part["claim_held_vs_runnable"], "ratio", _ratio,
                    target="G_claim_time")
            plan = part.get("claim_plan", {}).get("worker_session")
            if plan:
                add("G", "CANDIDATES: keyed_idx, no Seq Scan", float(plan["index_walk"]), "yes/no", _yes,
                    target="G_claim_plan")
        if section == "H":
            _add_rolling_rows(part, add)
        if section == "K":
            _add_mix_rows(results, add)
        if section == "I":
            for key, label in (
                ("claim_alone", "plain claim of 4, p50, 1,000 queued jobs"),
                ("claim_waiting", f"… + {part.get('claim_waiting', {}).get('waiting', 0):,} waiting rows"),
            ):
                if key in part:
                    add("I", label, part[key]["p50_ms"], "ms", _ms)
            if "claim_waiting_vs_alone" in part:
                add("I", "… with / without them", part["claim_waiting_vs_alone"], "ratio", _ratio,
                    target="I_claim")
    return rows


def _add_rolling_rows(part: dict[str, Any], add: Callable[..., None]) -> None:
    """Section H's rows, through table_rows()'s ``add``."""
    behind = part.get("claim_set_aside", {})
    if "claim_alone" in part:
        add("H", f"plain claim of 2, p50, {behind.get('runnable', 0):,} runnable jobs", part["claim_alone"]["p50_ms"],
            "ms", _ms)
    if "claim_set_aside" in part:
        add("H", f"… + {behind['unknown']:,} unknown-name jobs set aside ahead", behind["p50_ms"], "ms", _ms)
    if "claim_set_aside_vacuumed" in part:
        add("H", "… the same after a VACUUM", part["claim_set_aside_vacuumed"]["p50_ms"], "ms", _ms)
    if "claim_set_aside_vs_alone" in part:
        add("H", "… set aside / without them", part["claim_set_aside_vs_alone"], "ratio", _ratio,
            target="H_claim_time")
    aside = part.get("set_aside")
    if aside:
        add("H", f"setting {aside['set_aside']:,} aside: claims of {aside['limit']}", aside["claims"], "claims",
            _count)
        add("H", "… their time in all", aside["total_ms"], "ms", _ms)
    if "first_claim_ms" in part:
        add("H", f"first claim of {aside['limit'] if aside else 100} ahead of them, EXPLAIN ANALYZE",
            part["first_claim_ms"], "ms", _ms)
    walked = part.get("ready_idx_buffers", {})
    for key, label in (
        ("before", "ready_idx buffers, claim of 100 ahead of them"),
        ("after", "… once set aside, before a VACUUM"),
        ("vacuumed", "… after a VACUUM"),
    ):
        if key in walked:
            add("H", label, walked[key], "buffers", _count)
    plan = part.get("claim_plan", {}).get("worker_session")
    if plan:
        add("H", "claim: ready_idx, no Seq Scan", float(plan["index_walk"]), "yes/no", _yes,
            target="H_claim_plan")


def _add_mix_rows(results: dict[str, Any], add: Callable[..., None]) -> None:
    """Section K's rows, through table_rows()'s ``add``: each part's figures, then its check."""
    part = results["K"]

    def figure(key: str, label: str, unit: str, fmt: Callable[[float], str], e_key: str | None = None,
               target: str | None = None) -> None:
        if key in part:
            vs_e = ratio(median_of(results, "K", key), median_of(results, "E", e_key)) if e_key else None
            add("K", label, part[key], unit, fmt, vs_e, target)

    figure("orm_drain", "drain, 2 processes, an ORM UPDATE a job, CONN_MAX_AGE 60", "jobs/s", _rate,
           "drain_2_processes")
    figure("orm_reconnect_drain", "… with a connection per job (CONN_MAX_AGE 0)", "jobs/s", _rate,
           "drain_2_processes")
    figure("noop_drain", "… no-op jobs (B's drain), in turns", "jobs/s", _rate, "drain_2_processes")
    figure("orm_vs_noop", "ORM-write jobs / no-op jobs", "ratio", _ratio)
    figure("orm_reconnect_vs_noop", "… with a connection per job / no-op jobs", "ratio", _ratio)
    if part.get("orm_rows_not_once"):
        add("K", "… rows not updated exactly once", max(part["orm_rows_not_once"]), "rows", _count,
            target="K_orm_once")
    for queue, label in (("k-1ms", "1 ms"), ("k-50ms", "50 ms"), ("k-1s", "1 s"), ("k-mixed", "mixed")):
        figure(f"per_second_{queue}", f"{label} queue, jobs finished per second", "jobs/s", _rate1)
    figure("short_pickup_p50_ms", "1 ms jobs' pickup p50, among long ones", "ms", _ms)
    figure("short_pickup_p99_ms", "1 ms jobs' pickup p99, among long ones", "ms", _ms)
    figure("longest_wait_s", "longest wait, any job of any queue", "s", _seconds)
    if "no_queue_starves" in part:
        add("K", "no queue starves", float(part["no_queue_starves"]), "yes/no", _yes, target="K_starve")
    figure("burst_enqueue_rate", "burst: enqueue() from 8 processes", "jobs/s", _rate, "insert_2_processes")
    figure("burst_drain_rate_during", "burst: jobs done per second meanwhile", "jobs/s", _rate)
    figure("burst_drain_vs_enqueue", "… as a share of the enqueue rate", "ratio", _pct)
    figure("burst_tail_seconds", "burst: last enqueue → last outcome", "s", _seconds)
    if "burst_not_once" in part:
        add("K", "burst: jobs not run exactly once", part["burst_not_once"], "jobs", _count,
            target="K_burst_once")


HEADER = ["", "figure", "median", "min", "max", "unit", "vs E", "target", "result"]


def render_table(rows: list[list[str]]) -> str:
    """Fixed-width text: numbers right-aligned, words left-aligned."""
    all_rows = [HEADER, *rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(HEADER))]
    right = {2, 3, 4, 6}
    lines = []
    for n, row in enumerate(all_rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
