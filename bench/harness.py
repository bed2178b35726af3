"""The benchmark of issue 7: sections A–K against a database of its own; a table and a JSON file.

Start it with ``python3 bench/run.py`` (which prepares .venv and a PostgreSQL first); run
directly, ``python -m bench.harness`` uses ``DATABASE_URL``'s server as it is. Each section's
method says what it measures; docs/performance.md explains the method and the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from tests.support.procs import wait_until

from .report import judge_targets, median_of, percentile, ratio, render_table, summary, table_rows
from .workers import Runjobs

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
LOCAL_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
SECTIONS = "ABCDEFGHIJKL"

PROBE_RATE = 20.0  # C: enqueues per second
DELAY_RANGE = (0.5, 1.0)  # C: seconds a delayed probe waits, drawn uniformly
WARMUP_PROBES = 3  # C: run (and ignored) before measuring, so first-use costs don't count
IDLE_SECONDS = 5.0  # C: how long the idle workers' CPU is measured
FILL_CHUNK = 1000  # F: jobs per enqueue_many() while the worker runs
FLOW_BASELINE = "4aba3d6"  # G: the commit before flow control, B's "before"
FLOW_KEYS = 100  # G: concurrency keys the keyed drain's jobs are spread over
FLOW_DRAIN_BUDGET = 6.0  # G: seconds a keyed drain may run before its rate is read where it got
FAN_IN = 10_000  # I: upstream jobs of the fan-in (times --scale)
RELEASE_PROBES = 20  # I: fan-ins of 3 run by idle workers, for the release delay
WAITING_ROWS = 100_000  # I: waiting rows added under the claim (times --scale)
MIX_WINDOW = 15.0  # K: seconds of steady load on the four queues (times --scale) ...
MIX_WINDOW_MIN = 4.0  # ... but at least this many
MIX_TAIL = 15.0  # K: seconds the four queues' workers get after the load to finish its jobs
#: K: the children's CONN_MAX_AGE where their jobs keep a connection (BENCH_CONN_MAX_AGE).
PERSISTENT = {"BENCH_CONN_MAX_AGE": "60"}
RECONNECT_BUDGET = 10.0  # K: seconds the ORM writes with a connection per job may drain
BIG_LOADS = 15  # L: loads per admin page (after warm-ups), within BIG_PAGE_BUDGET seconds of loads
BIG_PAGE_BUDGET = 30.0
BIG_PAGES = ("overview", "jobs", "jobs_succeeded", "jobs_search", "jobs_search_miss")
BIG_PRUNE_ALONE = 2.0  # L: seconds the pruner runs with no drain, for its rate alone
BIG_PRUNE_PACE = 1_000_000  # L: rows a minute the paced pruner keeps to (the target)
# L's drains, and G's before and after, are this many times B's, and at most LONG_DRAIN_CAP jobs
# at any --scale (L's table grows, not the drain). B's 10,000 jobs drain in ~0.6-1 s, too short
# for a 10% difference to stand out of the noise: one run's L paced-pruner/alone ratios were
# 1.10, 0.79 and 0.63, L's claim ratio fell on either side of its line from one L-only run to
# the next, and G's before-and-after pairs in one full run were 0.99, 0.85 and 0.99 (their
# medians' ratio 0.87).
LONG_DRAIN_FACTOR = 5
LONG_DRAIN_CAP = 50_000


#: Drains in a row without VACUUM in section D's churn phase.
CHURN_ROUNDS = 5


@dataclass(frozen=True)
class Sizes:
    """How many jobs each part uses: the issue's numbers times ``--scale`` (with small floors)."""

    enqueue_one: int
    enqueue_many: int
    drain: int
    probes: int
    delayed: int
    finished: int
    memory_first: int
    memory_last: int
    keyed: int
    rated: int
    held: int
    runnable: int
    unknown: int
    burst: int

    @classmethod
    def at(cls, scale: float) -> Sizes:
        def scaled(base: int, floor: int) -> int:
            return max(floor, round(base * scale))

        return cls(
            enqueue_one=scaled(5_000, 20),
            enqueue_many=scaled(10_000, 50),
            drain=scaled(10_000, 50),
            probes=scaled(200, 10),
            delayed=scaled(100, 5),
            finished=scaled(1_000_000, 1_000),
            memory_first=scaled(1_000, 20),
            memory_last=scaled(100_000, 200),
            keyed=scaled(10_000, 200),
            rated=scaled(800, 300),
            held=scaled(100_000, 1_000),
            runnable=scaled(1_000, 200),
            unknown=scaled(10_000, 500),
            burst=scaled(100_000, 1_000),
        )


def _process_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(n) for n in text.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected process counts like 1,2 (each at least 1), not {text!r}")
    return counts


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark django-jobs against PostgreSQL (issue 7). See docs/performance.md.",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every job count by this (default 1; 0.01 for a smoke run)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; medians are reported")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="where to write the results (default bench/results/bench-<time>.json)",
    )
    parser.add_argument(
        "--database",
        default="django_jobs_bench",
        help="database to (re)create on DATABASE_URL's server (default %(default)s)",
    )
    parser.add_argument(
        "--only",
        default=SECTIONS,
        metavar="LETTERS",
        help=f"sections to run, e.g. AE or C (default all: {SECTIONS})",
    )
    parser.add_argument(
        "--memory-budget",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="F samples where it got to after this many seconds (default 120)",
    )
    parser.add_argument(
        "--at",
        metavar="REV",
        help="measure django_jobs/ as committed at REV (e.g. HEAD) instead of the working tree",
    )
    parser.add_argument(
        "--drain-processes",
        type=_process_counts,
        default=(1, 2),
        metavar="N[,N…]",
        help="B's (and E's) drains: with how many processes each (default 1,2)",
    )
    parser.add_argument(
        "--baseline",
        default=FLOW_BASELINE,
        metavar="REV",
        help="G compares B's drain with django_jobs/ as committed at REV (default %(default)s, the "
        "commit before flow control)",
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="leave the bench database in place afterwards"
    )
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error(f"--scale must be positive, not {args.scale:g}")
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, not {args.runs}")
    args.only = args.only.upper()
    unknown = sorted(set(args.only) - set(SECTIONS))
    if unknown:
        parser.error(f"--only takes section letters from {SECTIONS}, not {''.join(unknown)}")
    return args


class Bench:
    """Runs the selected sections in order and collects their figures in ``results``."""

    def __init__(self, args: argparse.Namespace, url: str, log_dir: Path) -> None:
        self.args = args
        self.only = args.only
        self.runs = args.runs
        self.sizes = Sizes.at(args.scale)
        self.url = url
        self.log_dir = log_dir
        self.results: dict[str, Any] = {}
        self.workers: list[Runjobs] = []

    # -- plumbing ----------------------------------------------------------------------------------

    def say(self, section: str, text: str) -> None:
        print(f"[{section}] {text}", flush=True)

    def part(self, section: str) -> dict[str, Any]:
        return self.results.setdefault(section, {})

    def figure(self, section: str, key: str, values: list[float], unit: str, **extra: Any) -> None:
        if values:
            self.part(section)[key] = {"unit": unit, **extra, **summary(values)}

    def start_worker(self, name: str, *args: str, env: dict[str, str] | None = None) -> Runjobs:
        worker = Runjobs(list(args), self.log_dir / f"{name}.log", env)
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.kill()
        self.workers.clear()

    def run(self) -> None:
        stages: list[tuple[str, str, Callable[[], None]]] = [
            ("AE", "A", self.enqueue),
            ("BE", "B", self.drain),
            ("C", "C", self.latency),
            ("DE", "D", self.scale),
            ("F", "F", self.memory),
            ("G", "G", self.flow),
            ("H", "H", self.rolling),
            ("I", "I", self.workflows),
            ("J", "J", self.charts),
            ("K", "K", self.mixes),
            ("L", "L", self.big_table),
        ]
        load = self.results.setdefault("meta", {}).setdefault("load_at_stage_start", {})
        for letters, main, stage in stages:
            if not set(letters) & set(self.only):
                continue
            load[main] = os.getloadavg()
            try:
                stage()
            except Exception as exc:  # noqa: BLE001 - report it, then measure the rest
                self._failed(main if main in self.only else "E", exc)
            finally:
                self.stop_workers()
        self.derive()

    # -- A (and E's inserts) -----------------------------------------------------------------------

    def enqueue(self) -> None:
        """A: enqueue() one per transaction (autocommit, as a view does), and one enqueue_many().

        E: the raw loop's one-row INSERTs from 1 and from 2 processes.
        """
        from . import ceiling, db
        from .benchapp.jobs import noop

        n_one, n_many = self.sizes.enqueue_one, self.sizes.enqueue_many
        one, many, raw1, raw2, lean = [], [], [], [], []
        for run in range(1, self.runs + 1):
            if "A" in self.only:
                db.reset()
                started = time.perf_counter()
                for _ in range(n_one):
                    noop.enqueue()
                one.append(n_one / (time.perf_counter() - started))
                db.reset()
                calls: list[list[Any]] = [[] for _ in range(n_many)]
                started = time.perf_counter()
                noop.enqueue_many(calls)
                many.append(n_many / (time.perf_counter() - started))
                self._check_count(db.JOB_TABLE, n_many)
                self.say(
                    "A",
                    f"run {run}/{self.runs}: enqueue() {one[-1]:,.0f} jobs/s ({n_one:,} jobs); "
                    f"enqueue_many() {many[-1]:,.0f} jobs/s ({n_many:,} jobs)",
                )
            if "E" in self.only:
                db.reset()
                raw1.append(ceiling.insert_rate(self.url, n_one, 1))
                db.reset()
                raw2.append(ceiling.insert_rate(self.url, n_one, 2))
                self._check_count(db.CEILING_TABLE, n_one)
                lean.append(ceiling.insert_rate(self.url, n_one, 1, lean=True))
                self._check_count(db.LEAN_TABLE, n_one)
                self.say(
                    "E",
                    f"run {run}/{self.runs}: raw INSERT {raw1[-1]:,.0f} jobs/s (1 process), "
                    f"{raw2[-1]:,.0f} jobs/s (2 processes); into the lean table {lean[-1]:,.0f} jobs/s",
                )
        self.figure("A", "enqueue_one_per_transaction", one, "jobs/s", jobs=n_one)
        self.figure("A", "enqueue_many", many, "jobs/s", jobs=n_many)
        self.figure("E", "insert_1_process", raw1, "jobs/s", jobs=n_one)
        self.figure("E", "insert_2_processes", raw2, "jobs/s", jobs=n_one)
        self.figure("E", "insert_lean_1_process", lean, "jobs/s", jobs=n_one)

    def _check_count(self, table: str, expected: int) -> None:
        from . import db

        count = db.scalar(f"SELECT count(*) FROM {table}")
        if count != expected:
            raise RuntimeError(f"{table} holds {count} rows after inserting {expected}")

    # -- B (and E's drains) ------------------------------------------------------------------------

    def drain(self) -> None:
        """B: drain queued no-op jobs with 1, then 2 ``runjobs --burst`` processes.

        E: the same with 1 and 2 raw loop processes. Rate = jobs / (last finished_at − first
        started_at), read from the table.
        """
        from . import db

        n = self.sizes.drain
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        for run in range(1, self.runs + 1):
            for section in "BE":
                if section not in self.only:
                    continue
                for procs in self.args.drain_processes:
                    key = f"drain_{procs}_process" + ("es" if procs > 1 else "")
                    table = db.JOB_TABLE if section == "B" else db.CEILING_TABLE
                    db.reset()
                    db.seed(table, n)
                    db.analyze(table)
                    found = self._drain(section, table, procs, n, f"B-run{run}-{procs}p")
                    runs.setdefault((section, key), []).append(found)
                    self.say(
                        section,
                        f"run {run}/{self.runs}, {procs} process(es): "
                        + self._describe_drain(n, found),
                    )
        for (section, key), drains in runs.items():
            self._drain_figure(section, key, n, drains)

    @staticmethod
    def _describe_drain(n: int, found: dict[str, float]) -> str:
        return (
            f"{n:,} jobs at {found['rate']:,.0f} jobs/s ({n / found['rate']:.1f} s first claim → "
            f"last outcome; {found['wall_seconds']:.1f} s wall, {found['startup_seconds']:.1f} s "
            f"to the first claim, {found['exit_seconds']:.1f} s from the last outcome to exit; "
            f"{found['commits_per_job']:.2f} commits/job)"
        )

    def _drain_figure(
        self, section: str, key: str, n: int, found: list[dict[str, float]], **extra: Any
    ) -> None:
        details = {k: [f[k] for f in found] for k in found[0] if k != "rate"}
        self.figure(section, key, [f["rate"] for f in found], "jobs/s", jobs=n, **extra, **details)

    def _drain(
        self,
        section: str,
        table: str,
        procs: int,
        n: int,
        name: str,
        after_id: int = 0,
        budget: float | None = None,
        env: dict[str, str] | None = None,
        raw: bool | None = None,
        after_workers: Callable[[], None] | None = None,
    ) -> dict[str, float]:
        """Drain ``table``'s queued rows; return jobs/s (from the table's timestamps) and details.

        ``raw``: with the raw loop (section E's) rather than ``runjobs``; by default, the raw loop
        on its own table and ``runjobs`` on django_jobs'. ``after_workers``: called once they have
        exited, before this waits for every other connection to close (section L stops its
        pruner there).

        Details: wall seconds; seconds from starting the processes to the first claim, and from the
        last outcome to the last exit; database commits and row updates per job
        (pg_stat_database, flushed by each backend as it exits). With a ``budget`` (seconds, the
        library's workers only), workers still running then are stopped (SIGTERM: they hand back
        what they hold), the figures count the jobs that succeeded, and the details say how many
        that was and whether the budget ran out. ``env``: the workers' environment (Runjobs).
        """
        from . import ceiling, db

        timeout = 120 + n / 20
        before = db.database_counters()
        started, began = time.monotonic(), time.time()
        budget_hit = False
        if raw is None:
            raw = table != db.JOB_TABLE
        if not raw:
            workers = [self.start_worker(f"{name}-{i}", "--burst", env=env) for i in range(procs)]
            if budget is not None:
                budget_hit = not self._exited(workers, started + budget)
            for worker in workers:
                code = worker.stop() if budget_hit else worker.wait(timeout - (time.monotonic() - started))
                if code != 0:
                    raise RuntimeError(f"runjobs exited with {code}; see {worker.log_path}")
        else:
            ceiling.drain(self.url, procs, timeout, table)
        wall, ended = time.monotonic() - started, time.time()
        if after_workers is not None:
            after_workers()
        db.wait_backends_gone()
        after = db.database_counters()
        counts = dict(
            db.execute(
                f"SELECT status, count(*) FROM {table} WHERE id > %s GROUP BY status", [after_id]
            )
        )
        if counts != {"succeeded": n} and not (budget_hit and set(counts) <= {"succeeded", "queued"}):
            raise RuntimeError(f"after draining {n:,} jobs from {table}: {counts}")
        first_claim, last_outcome, rows = db.drain_window(table, after_id)
        found = {
            "rate": rows / (last_outcome - first_claim),
            "first_claim": first_claim,
            "last_outcome": last_outcome,
            "wall_seconds": wall,
            "startup_seconds": first_claim - began,
            "exit_seconds": ended - last_outcome,
            "commits_per_job": (after["xact_commit"] - before["xact_commit"]) / rows,
            "updates_per_job": (after["tup_updated"] - before["tup_updated"]) / rows,
        }
        if budget is not None:
            found.update(jobs_done=rows, budget_hit=budget_hit)
        return found

    @staticmethod
    def _exited(workers: list[Runjobs], deadline: float) -> bool:
        """Wait until every worker has exited or ``deadline`` (monotonic) passes; whether they all
        exited."""
        for worker in workers:
            try:
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    # -- C -----------------------------------------------------------------------------------------

    def latency(self) -> None:
        """C: two idle ``runjobs`` processes; probes enqueued at 20/s; commit → body start.

        Then probes delayed 0.5–1 s: body start − run_at. Then the immediate probes again through
        the bare loop (ceiling.pickup), the floor for the first figure on this machine.
        """
        from . import ceiling, db

        per_run: dict[str, dict[str, list[float]]] = {"immediate": {}, "delayed": {}}
        idle: list[float] = []
        raw: dict[str, list[float]] = {"p50": [], "p99": []}  # the bare loop's (ceiling.pickup)
        for run in range(1, self.runs + 1):
            db.reset()
            workers = [self.start_worker(f"C-run{run}-{i}") for i in range(2)]
            self._wait_idle(len(workers))
            self._probe(WARMUP_PROBES, delayed=False, rng=random.Random(0))
            idle.append(self._idle_cpu(workers))
            self.say("C", f"run {run}/{self.runs}: idle workers used {idle[-1]:.2%} of a core each")
            for phase, count in (("immediate", self.sizes.probes), ("delayed", self.sizes.delayed)):
                ms = self._probe(count, delayed=phase == "delayed", rng=random.Random(run))
                stats = {
                    "p50": percentile(ms, 50),
                    "p95": percentile(ms, 95),
                    "p99": percentile(ms, 99),
                    "max": max(ms),
                }
                for q, value in stats.items():
                    per_run[phase].setdefault(q, []).append(value)
                self.say(
                    "C",
                    f"run {run}/{self.runs}, {phase}: {count} probes, "
                    + ", ".join(f"{q} {v:.2f} ms" for q, v in stats.items()),
                )
            for worker in workers:
                worker.stop()
            self.workers.clear()
            db.reset()
            ms = ceiling.pickup(self.url, self.sizes.probes, PROBE_RATE)
            raw["p50"].append(percentile(ms, 50))
            raw["p99"].append(percentile(ms, 99))
            self.say("C", f"run {run}/{self.runs}, the bare loop: {len(ms)} probes, "
                          f"p50 {raw['p50'][-1]:.2f} ms, p99 {raw['p99'][-1]:.2f} ms")
        self.figure("C", "idle_cpu", idle, "share of a core", seconds=IDLE_SECONDS)
        self.figure("C", "raw_pickup_p50_ms", raw["p50"], "ms", probes=self.sizes.probes)
        self.figure("C", "raw_pickup_p99_ms", raw["p99"], "ms", probes=self.sizes.probes)
        for phase, count in (("immediate", self.sizes.probes), ("delayed", self.sizes.delayed)):
            self.part("C")[phase] = {
                "jobs": count,
                "per_second": PROBE_RATE,
                "measures": "commit → body start"
                if phase == "immediate"
                else "body start − run_at",
                **({"delay_seconds": list(DELAY_RANGE)} if phase == "delayed" else {}),
                **{f"{q}_ms": summary(v) for q, v in per_run[phase].items()},
            }

    @staticmethod
    def _idle_cpu(workers: list[Runjobs]) -> float:
        """The CPU an idle worker uses (with its children), as a share of one core: each of
        ``workers`` is measured over IDLE_SECONDS with nothing to do, and the shares averaged."""
        before = [w.cpu_seconds() for w in workers]
        started = time.monotonic()
        time.sleep(IDLE_SECONDS)  # the measurement itself: the workers' CPU over this window
        elapsed = time.monotonic() - started
        return sum(w.cpu_seconds() - b for w, b in zip(workers, before)) / len(workers) / elapsed

    def _wait_idle(self, procs: int) -> None:
        """Wait until ``procs`` workers have registered and listen for NOTIFY."""
        from django_jobs.models import Worker

        from . import db

        wait_until(lambda: Worker.objects.count() >= procs, 60, f"{procs} workers to register")
        wait_until(lambda: db.listening_backends() >= procs, 30, f"{procs} workers to LISTEN")

    def _probe(self, count: int, delayed: bool, rng: random.Random) -> list[float]:
        """Enqueue ``count`` probes at PROBE_RATE; return each one's latency (or lateness) in ms."""
        from django_jobs.models import FINISHED_STATUSES

        from . import db
        from .benchapp.jobs import probe

        committed: dict[int, float] = {}
        begin = time.monotonic()
        for i in range(count):
            pause = begin + i / PROBE_RATE - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing the enqueues, not waiting for an outcome
            definition = (
                probe.using(delay=timedelta(seconds=rng.uniform(*DELAY_RANGE)))
                if delayed
                else probe
            )
            job = definition.enqueue()
            committed[job.id] = time.time()  # autocommit: enqueue() returned after the COMMIT
        ids = list(committed)
        finished = [s.value for s in FINISHED_STATUSES]
        wait_until(
            lambda: (
                db.scalar(
                    f"SELECT count(*) FROM {db.JOB_TABLE} WHERE id = ANY(%s) AND status = ANY(%s)",
                    [ids, finished],
                )
                == count
            ),
            60 + max(DELAY_RANGE),
            f"{count} probes to finish",
        )
        rows = db.execute(
            f"SELECT id, status, result, run_at FROM {db.JOB_TABLE} WHERE id = ANY(%s)", [ids]
        )
        bad = [(job_id, status) for job_id, status, _, _ in rows if status != "succeeded"]
        if bad:
            raise RuntimeError(f"probes that did not succeed: {bad[:5]}")
        ms = []
        for job_id, _, result, run_at in rows:
            body_started = float(json.loads(result) if isinstance(result, str) else result)
            reference = run_at.timestamp() if delayed else committed[job_id]
            ms.append((body_started - reference) * 1000)
        return ms

    # -- D (and E with finished rows) --------------------------------------------------------------

    def scale(self) -> None:
        """D: B's 2-process drain with many finished rows in the table; sizes, plan, dead tuples.

        E: the raw loop's 2-process drain over the same rows in its own table.
        """
        from . import db

        n, finished = self.sizes.drain, self.sizes.finished
        sections = [s for s in "DE" if s in self.only]
        tables = {"D": db.JOB_TABLE, "E": db.CEILING_TABLE}
        db.reset()
        started = time.monotonic()
        base: dict[str, int] = {}
        for section in sections:
            base[section] = self._seed_finished(tables[section], finished)
        self.say(
            sections[0],
            f"{finished:,} finished rows inserted and vacuumed in "
            f"{', '.join(tables[s] for s in sections)} ({time.monotonic() - started:.1f} s)",
        )
        runs: dict[str, list[dict[str, float]]] = {s: [] for s in sections}
        dead: dict[str, dict[str, list[int | None]]] = {
            s: {"before": [], "after": []} for s in sections
        }
        for run in range(1, self.runs + 1):
            for section in sections:
                table = tables[section]
                self._reseed(section, table, base[section], n)
                if run == 1:
                    try:
                        plan = self._explain(table)
                    except Exception as exc:  # noqa: BLE001 - a plan we can't read spoils no figure
                        plan = {"error": f"{type(exc).__name__}: {exc}"}
                    self.part(section)["explain" if section == "D" else "explain_1m"] = plan
                    self.say(
                        section,
                        f"claim plan uses {plan.get('index')}: {plan.get('uses_index')}"
                        + (f" ({plan['error']})" if "error" in plan else ""),
                    )
                before = db.table_counters(table)
                found = self._drain(section, table, 2, n, f"D-run{run}", after_id=base[section])
                after = db.table_counters(table)
                runs[section].append(found)
                dead[section]["before"].append(before.get("n_dead_tup"))
                dead[section]["after"].append(after.get("n_dead_tup"))
                self.say(
                    section,
                    f"run {run}/{self.runs}, 2 processes, {finished:,} finished rows: "
                    + self._describe_drain(n, found)
                    + "; dead tuples "
                    f"{before.get('n_dead_tup')} → {after.get('n_dead_tup')}",
                )
        if "D" in sections:
            self._churn(base["D"])
        for section in sections:
            suffix = "" if section == "D" else "_1m"
            self._drain_figure(
                section, "drain_2_processes" + suffix, n, runs[section], finished_rows=finished
            )
            self.part(section)["sizes" + suffix] = db.table_sizes(tables[section])
            self.part(section)["dead_tuples" + suffix] = dead[section]
            self.part(section)["finished_rows"] = finished

    @staticmethod
    def _seed_finished(table: str, rows: int) -> int:
        """Insert ``rows`` finished jobs into ``table`` (one INSERT … SELECT generate_series) and
        VACUUM ANALYZE it; the highest id, below which they are."""
        from . import db

        db.seed(table, rows, "finished")
        db.vacuum_analyze(table)
        return int(db.scalar(f"SELECT max(id) FROM {table}"))

    def _reseed(self, section: str, table: str, base: int, n: int, top_up: int = 0) -> int:
        """Before a drain over the finished rows: delete the last drain's rows (ids past ``base``),
        add ``top_up`` finished rows back (after pruning took as many), vacuum, queue ``n`` jobs,
        ANALYZE and CHECKPOINT. Returns the new ``base``: the queued jobs' ids are past it."""
        from . import db

        db.execute(f"DELETE FROM {table} WHERE id > %s", [base])
        if top_up:
            db.seed(table, top_up, "finished")
            base = int(db.scalar(f"SELECT max(id) FROM {table}"))
        db.vacuum_analyze(table)
        db.seed(table, n)
        db.analyze(table)
        self.part(section)["checkpointed"] = db.checkpoint()
        return base

    def _churn(self, base: int) -> None:
        """D, churn: CHURN_ROUNDS drains in a row over the finished rows, with no VACUUM between.

        Each drain leaves two dead tuples per job (claim, outcome) and dead entries in the ready
        index that the next claims must step over. Reported: each drain's rate and the dead
        tuples before it, the last drain's rate against the first's, and what one claim reads
        (EXPLAIN ANALYZE, BUFFERS, rolled back) before the first and before the last drain.
        """
        from . import db

        n, table = self.sizes.drain, db.JOB_TABLE
        db.execute(f"DELETE FROM {table} WHERE id > %s", [base])
        db.vacuum_analyze(table)
        rounds: list[dict[str, Any]] = []
        for round_ in range(1, CHURN_ROUNDS + 1):
            after_id = db.scalar(f"SELECT max(id) FROM {table}")
            db.seed(table, n)
            db.analyze(table)
            db.checkpoint()
            dead = db.table_counters(table).get("n_dead_tup")
            claim = db.claim_reads(*db.claim_statement(limit=100)) if round_ in (1, CHURN_ROUNDS) else None
            found = self._drain("D", table, 2, n, f"D-churn{round_}", after_id=after_id)
            rounds.append({**found, "dead_tuples_before": dead, "claim": claim})
            self.say(
                "D",
                f"churn {round_}/{CHURN_ROUNDS}, no VACUUM, {dead:,} dead tuples before: "
                + self._describe_drain(n, found)
                + (f"; one claim of 100 read {claim['buffers']} buffers in {claim['ms']:.2f} ms" if claim else ""),
            )
        part = self.part("D")
        part["churn"] = rounds
        part["churn_last"] = rounds[-1]["rate"]
        part["churn_ratio"] = rounds[-1]["rate"] / rounds[0]["rate"]
        part["churn_dead_tuples"] = rounds[-1]["dead_tuples_before"]

    def _explain(self, table: str) -> dict[str, Any]:
        """The plan of the claim on ``table``: django_jobs' own statement, or the raw loop's."""
        from . import ceiling, db

        if table == db.JOB_TABLE:
            sql, params = db.claim_statement(limit=2)
            return db.explain(sql, params, db.ready_index_name(table), session=db.WORKER_SESSION)
        sql, params = ceiling.claim_sql(), {"limit": 2, "worker_id": "bench:explain"}
        return db.explain(sql, params, db.ready_index_name(table))

    # -- F -----------------------------------------------------------------------------------------

    def memory(self) -> None:
        """F: one ``runjobs``, fed in chunks; the RSS of it and its children after the first and the
        last sample size of jobs, or wherever it got to at ``--memory-budget`` seconds."""
        from . import db
        from .benchapp.jobs import noop

        first, last = self.sizes.memory_first, self.sizes.memory_last
        budget = self.args.memory_budget
        db.reset()
        worker = self.start_worker("F-0")
        self._wait_idle(1)
        begin = time.monotonic()
        samples: dict[str, Any] = {}
        enqueued = 0
        while True:
            active = db.active_count()
            done = enqueued - active
            elapsed = time.monotonic() - begin
            if "first" not in samples and done >= first:
                memory = worker.memory()
                samples["first"] = {"jobs": done, "seconds": elapsed, "memory": memory}
                self.say("F", f"after {done:,} jobs: RSS {memory['rss_kb'] / 1024:.1f} MB")
            if "first" in samples and (done >= last or elapsed >= budget):
                samples["last"] = {"jobs": done, "seconds": elapsed, "memory": worker.memory()}
                break
            if elapsed >= budget * 2:
                raise TimeoutError(f"F: only {done:,} jobs done after {elapsed:.0f} s")
            if active < FILL_CHUNK and enqueued < last:
                chunk = min(FILL_CHUNK, last - enqueued)
                noop.enqueue_many([[] for _ in range(chunk)])
                enqueued += chunk
                continue
            time.sleep(0.1)  # poll interval while the worker drains the backlog
        worker.stop()
        budget_hit = samples["last"]["jobs"] < last
        rss = [samples[p]["memory"]["rss_kb"] for p in ("first", "last")]
        pss = [samples[p]["memory"]["pss_kb"] for p in ("first", "last")]
        self.part("F").update(
            target_jobs=last,
            budget_seconds=budget,
            budget_hit=budget_hit,
            **samples,
            rss_growth=rss[1] / rss[0] - 1,
            pss_growth=pss[1] / pss[0] - 1 if pss[0] else None,
        )
        note = f" (stopped by the {budget:g} s budget, short of {last:,})" if budget_hit else ""
        self.say(
            "F",
            f"after {samples['last']['jobs']:,} jobs{note}: RSS {rss[1] / 1024:.1f} MB, "
            f"growth {rss[1] / rss[0] - 1:+.1%}",
        )

    # -- G -----------------------------------------------------------------------------------------

    def flow(self) -> None:
        """G: flow control. Four parts, each reported on its own if another fails: B's drain before
        flow control and now; a drain limited to one job at a time per key against the same jobs
        unlimited; a rate's starts; the gated claim behind many held jobs."""
        from .benchapp.jobs import FLOW_CONTROL

        if not FLOW_CONTROL:
            self.part("G")["skipped"] = "the measured django_jobs has no flow control"
            self.say("G", "skipped: the measured django_jobs has no flow control (django_jobs.flow)")
            return
        self._parts("G", self._flow_before_after, self._flow_keyed, self._flow_rate, self._flow_claim)

    def _parts(self, section: str, *parts: Callable[[], None]) -> None:
        """Run a section's ``parts`` in turn, each reported on its own if another fails; the
        section's ``seconds`` say how long each took (by name less prefix: ``_flow_rate``, rate)."""
        seconds = self.part(section).setdefault("seconds", {})
        for part in parts:
            started = time.monotonic()
            try:
                part()
            except Exception as exc:  # noqa: BLE001 - report it, then measure the other parts
                self._failed(section, exc)
            finally:
                self.stop_workers()
                seconds[part.__name__.lstrip("_").split("_", 1)[1]] = round(time.monotonic() - started, 1)

    def _failed(self, section: str, exc: Exception) -> None:
        """Record an error of ``section`` (after any earlier one) and print it with its traceback."""
        text = f"{type(exc).__name__}: {exc}".strip()
        earlier = self.part(section).get("error")
        self.part(section)["error"] = f"{earlier}; {text}" if earlier else text
        self.say(section, f"ERROR: {text}")
        traceback.print_exc()

    def _flow_before_after(self) -> None:
        """G, before and after: B's drain of no-op jobs (no limits declared) with 2 processes, by
        django_jobs as of ``--baseline`` and by the measured code, in turns run by run so that
        both see the same machine. Each runs in a child harness (``--only B --runs 1
        --drain-processes 2``, with ``--at REV`` for the baseline) on a database of its own,
        migrated by that code: the measured code's drain doesn't run in a database sections A to
        F have used while the baseline's gets a new one."""
        # (The child harness takes a --scale, not a size: the same size as one.)
        scale = min(self.args.scale * LONG_DRAIN_FACTOR, LONG_DRAIN_CAP / Sizes.at(1.0).drain)
        n, rev = Sizes.at(scale).drain, self.args.baseline
        found: dict[str, list[dict[str, float]]] = {"before": [], "now": []}
        for run in range(1, self.runs + 1):
            # Alternating who goes first, so a trend in the machine's load favours neither.
            for which in ("before", "now") if run % 2 else ("now", "before"):
                found[which].append(self._child_drain(which, rev if which == "before" else None, run, scale))
            self.say(
                "G",
                f"run {run}/{self.runs}, B's drain of {n:,} jobs, 2 processes: before ({rev}) "
                f"{found['before'][-1]['rate']:,.0f} jobs/s, now {found['now'][-1]['rate']:,.0f} "
                f"jobs/s",
            )
        self._drain_figure("G", "before_drain_2_processes", n, found["before"], baseline=rev)
        self._drain_figure("G", "drain_2_processes", n, found["now"])

    def _child_drain(self, which: str, rev: str | None, run: int, scale: float) -> dict[str, float]:
        """B's drain with 2 processes by django_jobs as of ``rev`` (None: the measured code), from
        a child harness at ``scale`` on the database ``<database>_<which>``."""
        out = self.log_dir / f"G-{which}-run{run}.json"
        command = [
            sys.executable, "-m", "bench.harness", "--only", "B", "--runs", "1",
            "--drain-processes", "2", *(["--at", rev] if rev else []), "--scale", f"{scale:g}",
            "--json", str(out), "--database", f"{self.args.database}_{which}",
        ]
        with open(self.log_dir / f"G-{which}-run{run}.out", "wb") as log:
            code = subprocess.run(
                command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                timeout=600, check=False,
            ).returncode
        results = json.loads(out.read_text()) if out.exists() else {}
        figure = results.get("B", {}).get("drain_2_processes")
        if code != 0 or not figure:
            error = results.get("B", {}).get("error", "no figures")
            raise RuntimeError(f"the {which} run ({rev or 'this code'}) failed (exit {code}): {error}; see {log.name}")
        part = self.part("G")
        part.setdefault(f"{which}_worker_log_lines", []).append(results["worker_logs"]["lines"])
        if rev:
            part["baseline_commit"] = results["meta"]["code"]["commit"]
        # A figure holds each run's details as lists (see _drain_figure); this one ran once.
        return {k: v[0] for k, v in figure.items() if isinstance(v, list) and k != "runs"} | {
            "rate": figure["runs"][0]
        }

    def _flow_keyed(self) -> None:
        """G, keyed drain: jobs spread over FLOW_KEYS keys with ``concurrency=1`` per key
        (bench.keyed), drained by 2 ``runjobs --burst`` processes as in B, against the same jobs,
        same arguments, without the limit (bench.unkeyed), in turns. A drain still running after
        FLOW_DRAIN_BUDGET seconds is stopped and its rate read from the jobs done by then. Also
        checked from the rows: no job of a key started before the previous one of its key had
        finished."""
        from . import db, gated
        from .benchapp.limited import keyed, unkeyed

        n = self.sizes.keyed
        keys = gated.spread(n, FLOW_KEYS)
        runs: dict[str, list[dict[str, float]]] = {"keyed": [], "unkeyed": []}
        overlaps = []
        for run in range(1, self.runs + 1):
            pairs = [("unkeyed", unkeyed), ("keyed", keyed)]
            for label, definition in pairs if run % 2 else pairs[::-1]:
                db.reset()
                gated.enqueue_keyed(definition, keys)
                db.analyze(db.JOB_TABLE)
                runs[label].append(
                    self._drain(
                        "G", db.JOB_TABLE, 2, n, f"G-{label}-run{run}", budget=FLOW_DRAIN_BUDGET
                    )
                )
                if label == "keyed":
                    overlaps.append(gated.key_overlaps(keyed.name))
            done = {
                label: f"{found[-1]['rate']:,.0f} jobs/s"
                + (
                    f" ({found[-1]['jobs_done']:,} done in the {FLOW_DRAIN_BUDGET:g} s budget)"
                    if found[-1]["budget_hit"]
                    else ""
                )
                for label, found in runs.items()
            }
            self.say(
                "G",
                f"run {run}/{self.runs}, {n:,} jobs over {FLOW_KEYS} keys, 2 processes: "
                f"concurrency=1 per key {done['keyed']}, unlimited {done['unkeyed']}; "
                f"{overlaps[-1]} start(s) before the key's previous job finished",
            )
        self._drain_figure("G", "keyed_drain", n, runs["keyed"], keys=FLOW_KEYS)
        self._drain_figure("G", "unkeyed_drain", n, runs["unkeyed"], keys=FLOW_KEYS)
        self.part("G")["keyed_overlaps"] = overlaps

    def _flow_rate(self) -> None:
        """G, rate: queued bench.rated jobs (``rate="200/s"``) run by 2 ``runjobs`` processes (not
        ``--burst``: a burst worker exits when a rate holds all that is left), stopped once every
        job is done or after 1.5 times the time the rate needs (and 2 s). From the started_at of the
        jobs that succeeded (the claim's clock, the one the rate counts with): the starts per
        second over the whole seconds they span, and the most starts in any 1-second window."""
        from . import db, gated
        from .benchapp.limited import RATE_PER_SECOND, rated

        n = self.sizes.rated
        budget = 2 + 1.5 * n / RATE_PER_SECOND
        achieved, most, seconds, budget_hit = [], [], [], []
        for run in range(1, self.runs + 1):
            db.reset()
            rated.enqueue_many([[] for _ in range(n)])
            db.analyze(db.JOB_TABLE)
            workers = [self.start_worker(f"G-rated-run{run}-{i}") for i in range(2)]
            deadline = time.monotonic() + budget
            while db.active_count() and time.monotonic() < deadline:
                time.sleep(0.1)  # polling the table while the workers run the jobs
            budget_hit.append(time.monotonic() >= deadline)
            for worker in workers:
                worker.stop()
            self.workers.clear()
            counts = dict(db.execute(f"SELECT status, count(*) FROM {db.JOB_TABLE} GROUP BY status"))
            if counts != {"succeeded": n} and not (budget_hit[-1] and set(counts) <= {"succeeded", "queued"}):
                raise RuntimeError(f"after running {n:,} rate-limited jobs: {counts}")
            starts = gated.start_times(rated.name)
            achieved.append(gated.achieved_rate(starts))
            most.append(gated.most_in_window(starts))
            seconds.append(gated.per_second(starts))
            self.say(
                "G",
                f"run {run}/{self.runs}, {n:,} jobs at rate {RATE_PER_SECOND}/s"
                + (f" ({len(starts):,} done in the {budget:g} s budget)" if budget_hit[-1] else "")
                + f": {achieved[-1] or 0:,.1f} starts/s over the whole seconds, at most {most[-1]} "
                f"in any 1 s window; per second {seconds[-1]}",
            )
        self.figure(
            "G",
            "rate_achieved",
            [a for a in achieved if a is not None],
            "starts/s",
            jobs=n,
            limit=RATE_PER_SECOND,
            per_second=seconds,
            budget_seconds=budget,
            budget_hit=budget_hit,
        )
        self.figure("G", "rate_most_in_1s", most, "starts", jobs=n, limit=RATE_PER_SECOND)

    def _flow_claim(self) -> None:
        """G, claim: gates.claim_gated() for 2 jobs (a worker's idle children), timed over repeated
        claims each rolled back, on an empty table, on runnable jobs of FLOW_KEYS keys, and on the
        same with many more jobs of one key, held (concurrency=1, one of them running), queued
        ahead of them (a higher priority). With those: CANDIDATES' plan (it must walk
        django_jobs_keyed_idx, with no Seq Scan) and EXPLAIN ANALYZE of CANDIDATES and USAGE.
        The runnable jobs alone are timed before and after the held ones (deleted again), and
        their p50 is over both, so that a change in the machine's load between the two doesn't
        pass for the held rows' cost."""
        from . import db, gated
        from .benchapp.limited import keyed

        held, runnable, held_key = self.sizes.held, self.sizes.runnable, "key:-1"
        part = self.part("G")
        db.reset()
        db.analyze(db.JOB_TABLE)
        part["claim_empty"] = gated.time_claims()
        gated.enqueue_keyed(keyed, gated.spread(runnable, FLOW_KEYS))
        db.analyze(db.JOB_TABLE)
        alone = gated.time_claims()
        started = time.monotonic()
        gated.enqueue_keyed(keyed, [-1] * held, priority=10)
        gated.mark_running(held_key)
        db.analyze(db.JOB_TABLE)
        seeded = time.monotonic() - started
        part["claim_held"] = {**gated.time_claims(held_key), "held": held, "runnable": runnable}
        part["claim_plan"] = gated.candidates_plan()
        part["claim_profile"] = gated.analyze_statements(
            [held_key] + [f"key:{k}" for k in range(FLOW_KEYS)]
        )
        db.execute(f"DELETE FROM {db.JOB_TABLE} WHERE concurrency_key = %s", [held_key])
        db.vacuum_analyze(db.JOB_TABLE)
        part["claim_runnable"] = gated.merge_times(alone, gated.time_claims())
        plan = part["claim_plan"]["worker_session"]
        profile = part["claim_profile"]
        self.say(
            "G",
            f"gated claim of {gated.WANT}, p50: empty table {part['claim_empty']['p50_ms']:.2f} ms; "
            f"{runnable:,} runnable jobs of {FLOW_KEYS} keys {part['claim_runnable']['p50_ms']:.2f} ms; "
            f"+ {held:,} held jobs of one key ahead of them (seeded in {seeded:.1f} s) "
            f"{part['claim_held']['p50_ms']:.2f} ms. CANDIDATES walks {gated.KEYED_INDEX}: "
            f"{plan['uses_index']}, Seq Scan: {plan['seq_scan']} (under PostgreSQL's default "
            f"settings: {part['claim_plan']['default_settings']['uses_index']}, "
            f"{part['claim_plan']['default_settings']['seq_scan']}); EXPLAIN ANALYZE: "
            + "; ".join(
                f"{name.upper()} {found['ms']:.2f} ms (+ {found['planning_ms']:.2f} ms planning), "
                f"{found['buffers']} buffers"
                for name, found in profile.items()
            ),
        )

    # -- H -----------------------------------------------------------------------------------------

    def rolling(self) -> None:
        """H: rolling deploys, jobs of names the measured code doesn't register. A list of parts,
        each reported on its own if another fails: the plain claim behind unknown names."""
        from . import db

        if not db.SETS_ASIDE:
            self.part("H")["skipped"] = "the measured django_jobs doesn't set aside unknown names"
            self.say("H", "skipped: the measured code's claim doesn't set aside unknown names "
                     "(no claims.claim_and_park)")
            return
        self._parts("H", self._rolling_claim)

    def _rolling_claim(self) -> None:
        """H, the plain claim behind unknown names: claims.claim_and_park() (what claim() runs) for
        2 jobs, timed over repeated claims each rolled back, on runnable no-op jobs alone, then with
        many queued jobs of a name no code registers ahead of them (priority 10) once the claims a
        worker would run have set those aside (committed, LIMIT 100; the first claim that would
        take a runnable job is rolled back), and again after a VACUUM. The claim's plan must walk
        django_jobs_ready_idx with no Seq Scan. EXPLAIN ANALYZE of one claim of 100 before and
        after they are set aside, and after the VACUUM. The runnable jobs alone are timed before
        and after (the unknown rows deleted again), and their p50 is over both, so that a change
        in the machine's load doesn't pass for the rows' cost; all of it ``--runs`` times, the
        p50s over every run's claims."""
        from . import gated, rolling

        unknown, runnable = self.sizes.unknown, self.sizes.runnable
        part = self.part("H")
        part["loadavg_at_claim_start"] = os.getloadavg()
        runs = []
        for run in range(1, self.runs + 1):
            runs.append(self._claim_behind_unknown(run))
        part["claim_plan"] = runs[0]["plan"]
        part["claim_alone"] = gated.merge_times(*(r[k] for r in runs for k in ("alone", "alone_after")))
        for key, label in (("claim_set_aside", "behind"), ("claim_set_aside_vacuumed", "vacuumed")):
            timed = [r[label] for r in runs]
            part[key] = {
                **gated.merge_times(*timed),
                "set_aside_per_claim": sorted({n for t in timed for n in t["set_aside_per_claim"]}),
                "unknown": unknown,
                "runnable": runnable,
            }
        asides = [r["set_aside"] for r in runs]
        part["set_aside"] = {
            **{k: asides[0][k] for k in ("limit", "unknown")},
            "claims": max(a["claims"] for a in asides),
            "set_aside": min(a["set_aside"] for a in asides),
            "total_ms": summary([a["total_ms"] for a in asides]),
            "each_run": asides,
        }
        part["first_claim_ms"] = summary([r["reads_before"]["ms"] for r in runs])
        for key in ("reads_before", "reads_after", "reads_vacuumed"):
            part[f"claim_{key}"] = runs[-1][key]
        part["ready_idx_buffers"] = {
            key: summary([r[f"reads_{key}"]["index_buffers"].get(rolling.READY_INDEX, 0) for r in runs])
            for key in ("before", "after", "vacuumed")
        }
        part["dead_tuples_after_set_aside"] = [r["dead_tuples"] for r in runs]
        part["loadavg_at_claim_end"] = os.getloadavg()
        plan = part["claim_plan"]
        self.say(
            "H",
            f"over {self.runs} run(s): plain claim of {gated.WANT}, p50 {part['claim_alone']['p50_ms']:.2f} ms "
            f"alone, {part['claim_set_aside']['p50_ms']:.2f} ms behind {unknown:,} set aside, "
            f"{part['claim_set_aside_vacuumed']['p50_ms']:.2f} ms after a VACUUM. The claim walks "
            f"{rolling.READY_INDEX}: {plan['worker_session']['uses_index']}, Seq Scan: "
            f"{plan['worker_session']['seq_scan']} (under PostgreSQL's default settings: "
            f"{plan['default_settings']['uses_index']}, {plan['default_settings']['seq_scan']})",
        )

    def _claim_behind_unknown(self, run: int) -> dict[str, Any]:
        """One run of _rolling_claim(): its timings, the setting aside, and the claims' reads."""
        from . import db, gated, rolling

        unknown, runnable = self.sizes.unknown, self.sizes.runnable
        load = os.getloadavg()
        found: dict[str, Any] = {}
        db.reset()
        db.seed(db.JOB_TABLE, runnable)
        db.analyze(db.JOB_TABLE)
        found["alone"] = rolling.time_claims()
        rolling.seed_unknown(unknown)
        db.analyze(db.JOB_TABLE)
        found["reads_before"] = rolling.claim_reads()
        aside = found["set_aside"] = {**rolling.set_aside(), "unknown": unknown}
        # (Short of all of them by what the rolled-back last claim set aside beside its jobs.)
        done, expected = rolling.set_aside_count(), unknown - aside["last_claim"]["set_aside"]
        if done != expected:
            raise RuntimeError(f"{done:,} of the {unknown:,} unknown rows set aside, not {expected:,}")
        db.execute("SELECT pg_stat_force_next_flush()")  # our own updates, counted in n_dead_tup now
        found["dead_tuples"] = db.table_counters(db.JOB_TABLE).get("n_dead_tup")
        found["behind"] = rolling.time_claims()
        if run == 1:  # (the same plan every run)
            found["plan"] = rolling.claim_plan()
        found["reads_after"] = rolling.claim_reads()
        # The claims above step over the set-aside rows' dead entries in the ready index (their
        # row versions from before parked_at was set) until a VACUUM removes them.
        db.vacuum_analyze(db.JOB_TABLE)
        found["vacuumed"] = rolling.time_claims()
        found["reads_vacuumed"] = rolling.claim_reads()
        db.execute(f"DELETE FROM {db.JOB_TABLE} WHERE name = %s", [rolling.UNKNOWN_NAME])
        db.vacuum_analyze(db.JOB_TABLE)
        found["alone_after"] = rolling.time_claims()
        reads = {k: found[f"reads_{k}"] for k in ("before", "after", "vacuumed")}
        walked = {k: r["index_buffers"].get(rolling.READY_INDEX, 0) for k, r in reads.items()}
        self.say(
            "H",
            f"run {run}/{self.runs}, plain claim of {gated.WANT}, p50: {runnable:,} runnable jobs alone "
            f"{found['alone']['p50_ms']:.2f} ms, again at the end {found['alone_after']['p50_ms']:.2f} ms; "
            f"+ {unknown:,} of a name no code registers, set aside, ahead of them "
            f"{found['behind']['p50_ms']:.2f} ms ({found['dead_tuples']:,} dead tuples), after a VACUUM "
            f"{found['vacuumed']['p50_ms']:.2f} ms. Setting them aside: {aside['claims']} claim(s) of "
            f"{aside['limit']}, {aside['total_ms']:.0f} ms in all (at most {aside['max_ms']:.1f} ms "
            f"each). EXPLAIN ANALYZE, one claim of {rolling.SET_ASIDE_LIMIT}: "
            + "; ".join(
                f"{label} {reads[k]['ms']:.2f} ms (+ {reads[k]['planning_ms']:.2f} ms planning), "
                f"{reads[k]['buffers']} buffers, {walked[k]} of them walking {rolling.READY_INDEX}"
                for k, label in (("before", "before they are set aside"), ("after", "after"),
                                 ("vacuumed", "after a VACUUM"))
            )
            + f". Load average {' '.join(f'{x:.2f}' for x in load)} → "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        )
        return found

    # -- I ---------------------------------------------------------------------------------------

    def workflows(self) -> None:
        """I (workflows): a fan-in of FAN_IN no-op jobs drained by 2 ``runjobs --burst`` against
        the same jobs without the job waiting on them; from those drains, and from RELEASE_PROBES
        fan-ins of 3 run by 2 idle workers, the time from the last upstream outcome to the
        downstream job's claim; and the plain claim's time over CLAIM_QUEUED queued jobs, before
        and with WAITING_ROWS waiting rows in the table."""
        from . import db
        from . import workflows as wf

        if wf.DEPENDENCY_TABLE is None:
            self.part("I")["skipped"] = "the measured django_jobs has no workflows"
            self.say("I", "skipped: the measured django_jobs has no workflows (django_jobs.db.workflows)")
            return
        part = self.part("I")
        n = max(100, round(FAN_IN * self.args.scale))
        plain, fan_in, delays = [], [], []
        for run in range(1, self.runs + 1):
            wf.reset()
            wf.seed_plain(n)
            db.analyze(db.JOB_TABLE)
            plain.append(self._drain("I", db.JOB_TABLE, 2, n, f"I-plain-run{run}"))
            wf.reset()
            downstream = wf.seed_fan_in(n)
            db.analyze(db.JOB_TABLE)
            fan_in.append(self._drain("I", db.JOB_TABLE, 2, n + 1, f"I-fan-in-run{run}"))
            delays.append(wf.release_delay_ms(downstream))
            self.say(
                "I",
                f"run {run}/{self.runs}: plain {plain[-1]['rate']:,.0f} jobs/s, fan-in of {n:,} "
                f"{fan_in[-1]['rate']:,.0f} jobs/s; downstream claimed {delays[-1]:.1f} ms after the "
                f"last upstream outcome",
            )
        self._drain_figure("I", "plain_drain", n, plain)
        self._drain_figure("I", "fan_in_drain", n, fan_in)
        self.figure("I", "release_after_drain_ms", delays, "ms")
        wf.reset()
        workers = [self.start_worker(f"I-release-{i}") for i in range(2)]
        self._wait_idle(len(workers))
        probes = []
        for _ in range(RELEASE_PROBES):
            downstream = wf.seed_fan_in(3)
            wait_until(
                lambda job=downstream: db.scalar(f"SELECT status FROM {db.JOB_TABLE} WHERE id = %s", [job])
                == "succeeded",
                30, "a fan-in's downstream job to succeed",
            )
            probes.append(wf.release_delay_ms(downstream))
        for worker in workers:
            worker.stop()
        self.workers.clear()
        self.figure("I", "release_idle_ms", probes, "ms", probes=RELEASE_PROBES)
        waiting = max(1_000, round(WAITING_ROWS * self.args.scale))
        wf.reset()
        db.seed(db.JOB_TABLE, wf.CLAIM_QUEUED)
        db.analyze(db.JOB_TABLE)
        alone = wf.time_claims()
        wf.seed_waiting(waiting)
        db.analyze(db.JOB_TABLE)
        part["claim_waiting"] = {**wf.time_claims(), "waiting": waiting, "queued": wf.CLAIM_QUEUED}
        db.execute(f"DELETE FROM {db.JOB_TABLE} WHERE status = 'waiting'")
        db.vacuum_analyze(db.JOB_TABLE)
        again = wf.time_claims()
        part["claim_alone"] = {**alone, "p50_ms_each": [alone["p50_ms"], again["p50_ms"]],
                               "p50_ms": percentile(alone["times_ms"] + again["times_ms"], 50)}
        self.say(
            "I",
            f"release delay p50: {percentile(probes, 50):.1f} ms (idle workers), "
            f"{percentile(delays, 50):.1f} ms (after a drain); plain claim of {wf.CLAIM_LIMIT}, p50: "
            f"{part['claim_alone']['p50_ms']:.3f} ms over {wf.CLAIM_QUEUED:,} queued jobs, "
            f"{part['claim_waiting']['p50_ms']:.3f} ms with {waiting:,} waiting rows too",
        )

    # -- J (charts) --------------------------------------------------------------------------------

    def charts(self) -> None:
        """J (charts, issue 18): the overview's load time, per period of its charts, with
        ``finished`` jobs in the table and the charts' table full (48 hours of minutes and 90 days
        of hours for 3 queues and 20 job names); and the per-minute statement's time recording a
        minute of 6,000 jobs (at scale 1), and its number of statements. The finished jobs are
        spread over a week, as a site with a week of retention keeps them."""
        from . import charts as ch
        from . import db

        if ch.SAMPLE_TABLE is None:
            self.part("J")["skipped"] = "the measured django_jobs has no charts"
            self.say("J", "skipped: the measured django_jobs has no charts (django_jobs.db.series)")
            return
        part = self.part("J")
        finished = self.sizes.finished
        names = max(2, round(ch.NAMES * self.args.scale))
        started = time.monotonic()
        db.reset()
        db.execute(f"TRUNCATE {ch.SAMPLE_TABLE}")
        ch.seed_finished(finished, ch.SPREAD_SECONDS, names)
        db.seed(db.JOB_TABLE, 1_000)  # a backlog: the overview's queues and the charts' depth
        samples = ch.fill_samples(names)
        db.vacuum_analyze(db.JOB_TABLE)
        db.vacuum_analyze(ch.SAMPLE_TABLE)
        part["sizes"] = {"finished": finished, "queued": 1_000, "samples": samples, "names": names}
        self.say("J", f"{finished:,} jobs finished over a week and {samples:,} chart rows in place "
                      f"({time.monotonic() - started:.1f} s)")
        loads = ch.load_overview()
        for view, found in loads.items():
            self.figure("J", f"overview_{view}_ms", found["times_ms"], "ms",
                        charts=found["charts"], empty_charts=found["empty_charts"], bytes=found["bytes"])
        part["overview_worst_p50_ms"] = max(percentile(f["times_ms"], 50) for f in loads.values())
        self.say("J", "overview p50: " + ", ".join(
            f"{view} {percentile(f['times_ms'], 50):.0f} ms ({f['charts']} charts)" for view, f in loads.items()
        ))
        # Then busy minutes for the per-minute statement to record.
        busy = max(100, round(ch.BUSY_PER_MINUTE * self.args.scale))
        ch.seed_finished(busy * (ch.RECORDS + 2), (ch.RECORDS + 2) * 60, names)
        db.analyze(db.JOB_TABLE)
        record = ch.time_records()
        part["record"] = record
        self.figure("J", "record_ms", record["times_ms"], "ms", jobs=record["jobs_in_a_minute"])
        part["record_statements"] = record["statements"]
        self.say("J", f"per-minute statement: {record['p50_ms']:.1f} ms p50 recording "
                      f"{record['jobs_in_a_minute']:,} jobs a minute ({record['statements']} statement); "
                      f"{record['lost_p50_ms']:.2f} ms when another worker got there first")

    # -- K (realistic mixes) -----------------------------------------------------------------------

    def mixes(self) -> None:
        """K (realistic mixes, issue 19): jobs that each write a row of their own; four queues of
        short and long jobs on the same workers; a burst of enqueues from 8 processes while 2
        workers drain. Each part is reported on its own if another fails."""
        self._parts("K", self._mix_orm_writes, self._mix_queues, self._mix_burst)

    def _mix_orm_writes(self) -> None:
        """K, ORM writes: B's 2-process drain (``runjobs --burst``) of bench.orm_write jobs, each
        adding one to a Counter row of its own with one ORM UPDATE: with the children's connections
        kept between jobs (CONN_MAX_AGE 60, PERSISTENT), and with Django's default (0: a connection
        per job; stopped after RECONNECT_BUDGET seconds, its rate read from the jobs done by then);
        against B's no-op jobs, in turns run by run (the order reverses every other run). After each
        ORM drain every row must read 1 if its job succeeded, else 0."""
        from . import db, mixes

        n = self.sizes.drain
        options: dict[str, dict[str, Any]] = {
            "noop": {}, "orm": {"env": PERSISTENT}, "orm_reconnect": {"budget": RECONNECT_BUDGET}
        }
        found: dict[str, list[dict[str, float]]] = {label: [] for label in options}
        not_once = []
        for run in range(1, self.runs + 1):
            for label in list(found) if run % 2 else list(found)[::-1]:
                db.reset()
                if label == "noop":
                    db.seed(db.JOB_TABLE, n)
                else:
                    mixes.seed_counters(n)
                    mixes.enqueue_writes(n)
                db.analyze(db.JOB_TABLE)
                found[label].append(self._drain("K", db.JOB_TABLE, 2, n, f"K-{label}-run{run}", **options[label]))
                if label != "noop":
                    not_once.append(mixes.counters_not_once(n))
            reconnect = found["orm_reconnect"][-1]
            self.say(
                "K",
                f"run {run}/{self.runs}, 2 processes, one ORM UPDATE per job: "
                + self._describe_drain(n, found["orm"][-1])
                + f"; a connection per job (CONN_MAX_AGE 0) {reconnect['rate']:,.0f} jobs/s"
                + (f" ({reconnect['jobs_done']:,} done in the {RECONNECT_BUDGET:g} s budget)"
                   if reconnect["budget_hit"] else "")
                + f"; no-op jobs in turn {found['noop'][-1]['rate']:,.0f} jobs/s; "
                f"{sum(not_once[-2:])} row(s) not matching their job",
            )
        self._drain_figure("K", "orm_drain", n, found["orm"], conn_max_age=int(PERSISTENT["BENCH_CONN_MAX_AGE"]))
        self._drain_figure("K", "orm_reconnect_drain", n, found["orm_reconnect"], conn_max_age=0,
                           budget_seconds=RECONNECT_BUDGET)
        self._drain_figure("K", "noop_drain", n, found["noop"])
        self.part("K")["orm_rows_not_once"] = not_once

    def _mix_queues(self) -> None:
        """K, four queues: 2 ``runjobs`` processes (not burst, default concurrency) serving the
        queues of mixes.QUEUES, fed bench.sleep jobs at each queue's rate for MIX_WINDOW seconds
        (times --scale, at least MIX_WINDOW_MIN), one enqueue() per transaction; then up to
        MIX_TAIL seconds to finish. Per queue: jobs finished per second during the load, and each
        job's pickup, from its enqueue's commit to its body's start (as C's). A queue starves when
        it finished nothing during the load or one of its jobs waited over mixes.STARVE_AFTER."""
        from . import db, mixes

        window = max(MIX_WINDOW_MIN, MIX_WINDOW * self.args.scale)
        queues = [arg for queue in mixes.QUEUES for arg in ("--queue", queue)]
        runs = []
        for run in range(1, self.runs + 1):
            db.reset()
            workers = [self.start_worker(f"K-queues-run{run}-{i}", *queues) for i in range(2)]
            self._wait_idle(len(workers))
            events = mixes.schedule(window, random.Random(run))
            started = time.time()
            committed = mixes.enqueue_load(events)
            ended = time.time()
            deadline = time.monotonic() + MIX_TAIL
            while db.active_count() and time.monotonic() < deadline:
                time.sleep(0.1)  # polling the table while the workers finish the load
            observed = time.time()
            for worker in workers:
                worker.stop()
            self.workers.clear()
            runs.append(mixes.queue_figures(committed, (started, ended), observed))
            self.say(
                "K",
                f"run {run}/{self.runs}, {len(events):,} jobs over {ended - started:.1f} s: "
                + "; ".join(
                    f"{queue} {f['per_second']:,.1f} jobs/s, pickup p50 {f['pickup_p50_ms']:.1f} ms "
                    f"p99 {f['pickup_p99_ms']:.1f} ms, longest wait {f['longest_wait_s']:.2f} s"
                    + (" STARVED" if f["starved"] else "")
                    for queue, f in runs[-1].items()
                ),
            )
        part = self.part("K")
        part["queues"] = {"window_seconds": window, "rates": mixes.RATES, "durations": mixes.QUEUES,
                          "starve_after_seconds": mixes.STARVE_AFTER, "runs": runs}
        for queue in mixes.QUEUES:
            self.figure("K", f"per_second_{queue}", [r[queue]["per_second"] for r in runs], "jobs/s",
                        rate=mixes.RATES[queue])
        for q in ("p50", "p99"):
            self.figure("K", f"short_pickup_{q}_ms", [r[mixes.SHORT_QUEUE][f"pickup_{q}_ms"] for r in runs], "ms")
        self.figure("K", "longest_wait_s", [max(f["longest_wait_s"] for f in r.values()) for r in runs], "s")
        part["no_queue_starves"] = not any(f["starved"] for r in runs for f in r.values())

    def _mix_burst(self) -> None:
        """K, burst: 2 ``runjobs`` processes (not burst, PERSISTENT) idle and listening, then 8 forked
        processes enqueue a bench.orm_write job for each of ``burst`` Counter rows at once, one
        enqueue() per transaction. The enqueue rate over the 8; the jobs finished while they
        enqueued, per second; the time from the last enqueue to the last outcome; and the jobs that
        did not succeed after exactly one attempt, or whose row does not read 1. Once, not --runs
        times, as F: at scale 1 it is the longest part (every enqueue waits for its own WAL flush,
        see docs/performance.md)."""
        from . import db, mixes

        n = self.sizes.burst
        db.reset()
        mixes.seed_counters(n)
        workers = [self.start_worker(f"K-burst-{i}", env=PERSISTENT) for i in range(2)]
        self._wait_idle(len(workers))
        started, last_enqueue = mixes.burst(n)
        wait_until(lambda: db.active_count() == 0, 120 + n / 200, f"the burst's {n:,} jobs to finish")
        for worker in workers:
            worker.stop()
        self.workers.clear()
        found = mixes.burst_outcome(n, started, last_enqueue)
        self.say(
            "K",
            f"{n:,} enqueues from {mixes.BURST_PROCESSES} processes: "
            f"{found['enqueue_rate']:,.0f} jobs/s over {found['enqueue_seconds']:.1f} s; "
            f"{found['done_by_last_enqueue']:,} done meanwhile ({found['drain_rate_during']:,.0f} "
            f"jobs/s); last outcome {found['tail_seconds']:.2f} s after the last enqueue; "
            f"{found['jobs_not_once']} job(s) not succeeded once, {found['rows_not_once']} row(s) "
            f"not updated once",
        )
        for key, unit in (("enqueue_rate", "jobs/s"), ("drain_rate_during", "jobs/s"), ("tail_seconds", "s")):
            self.figure("K", f"burst_{key}", [found[key]], unit, jobs=n, processes=mixes.BURST_PROCESSES)
        part = self.part("K")
        part["burst"] = found
        part["burst_not_once"] = found["jobs_not_once"] + found["rows_not_once"]
    # -- L (a big table) ----------------------------------------------------------------------------

    def big_table(self) -> None:
        """L: a big table of finished jobs (``finished`` rows: 1,000,000 × --scale).

        Three parts on the same rows, each reported on its own if another fails: B's 2-process
        drain and the raw loop's, over the rows and (after a TRUNCATE, at the end) without them;
        the admin's overview and job list; the pruning service deleting while a drain runs.
        """
        from . import db

        n, finished = min(self.sizes.drain * LONG_DRAIN_FACTOR, LONG_DRAIN_CAP), self.sizes.finished
        part, table = self.part("L"), db.JOB_TABLE
        part.update(finished_rows=finished, jobs=n)
        db.reset()
        started = time.monotonic()
        base = self._seed_finished(table, finished)
        part["seed_seconds"] = round(time.monotonic() - started, 1)
        part["sizes"] = db.table_sizes(table)
        part["database_bytes"] = db.scalar("SELECT pg_database_size(current_database())")
        self.say("L", f"{finished:,} finished rows inserted and vacuumed in {part['seed_seconds']:.1f} s: "
                      f"table {part['sizes']['table_bytes'] / 2**20:,.0f} MB, indexes "
                      f"{part['sizes']['indexes_bytes'] / 2**20:,.0f} MB")
        for step in (self._big_drains, self._big_pages, self._big_prune, self._big_drains_without):
            begun = time.monotonic()
            try:
                base = step(base, n) or base
            except Exception as exc:  # noqa: BLE001 - report it, then measure the other parts
                self._failed("L", exc)
            finally:
                self.stop_workers()
                part.setdefault("seconds", {})[step.__name__.removeprefix("_big_")] = round(
                    time.monotonic() - begun, 1)

    def _big_drains(self, base: int, n: int) -> None:
        """L: ``runjobs`` and the raw loop drain ``n`` jobs with 2 processes over the big table, in
        turns (who goes first alternates run by run), each after _reseed()."""
        from . import db

        found: dict[str, list[dict[str, float]]] = {"library": [], "raw": []}
        for run in range(1, self.runs + 1):
            for who in ("library", "raw") if run % 2 else ("raw", "library"):
                self._reseed("L", db.JOB_TABLE, base, n)
                if run == 1 and who == "library":
                    self.part("L")["explain"] = self._explain(db.JOB_TABLE)
                drain = self._drain("L", db.JOB_TABLE, 2, n, f"L-run{run}-{who}", after_id=base,
                                    raw=who == "raw")
                found[who].append(drain)
                self.say("L", f"run {run}/{self.runs}, {who}, 2 processes, over the big table: "
                              + self._describe_drain(n, drain))
        self._drain_figure("L", "drain_2_processes", n, found["library"])
        self._drain_figure("L", "raw_drain_2_processes", n, found["raw"])
        db.execute(f"DELETE FROM {db.JOB_TABLE} WHERE id > %s", [base])

    def _big_drains_without(self, base: int, n: int) -> None:
        """L: the same drains on the emptied table (TRUNCATE, so B's conditions): the baseline of
        both ratios."""
        from . import db

        found: dict[str, list[dict[str, float]]] = {"library": [], "raw": []}
        for run in range(1, self.runs + 1):
            for who in ("library", "raw") if run % 2 else ("raw", "library"):
                db.reset()
                db.seed(db.JOB_TABLE, n)
                db.analyze(db.JOB_TABLE)
                drain = self._drain("L", db.JOB_TABLE, 2, n, f"L-empty{run}-{who}", raw=who == "raw")
                found[who].append(drain)
                self.say("L", f"run {run}/{self.runs}, {who}, 2 processes, empty table: "
                              + self._describe_drain(n, drain))
        self._drain_figure("L", "drain_2_processes_empty", n, found["library"])
        self._drain_figure("L", "raw_drain_2_processes_empty", n, found["raw"])

    def _big_pages(self, base: int, n: int) -> None:
        """L: the admin's overview and job list over the big table (bench/overview.py), with the
        drains' rows deleted and 1,000 jobs queued, as in section J."""
        from . import charts as ch
        from . import db

        db.execute(f"DELETE FROM {db.JOB_TABLE} WHERE id > %s", [base])
        db.seed(db.JOB_TABLE, 1_000)
        db.vacuum_analyze(db.JOB_TABLE)
        if ch.SAMPLE_TABLE is not None:
            ch.forget_samples()  # the drains' workers recorded minutes: the first loads count the hour
        loads = ch.load_overview(BIG_PAGES, BIG_LOADS, BIG_PAGE_BUDGET)
        part = self.part("L")
        for page, found in loads.items():
            self.figure("L", f"page_{page}_ms", found["times_ms"], "ms", rows=found["rows"],
                        bytes=found["bytes"])
        part["jobs_worst_p50_ms"] = max(
            percentile(loads[p]["times_ms"], 50) for p in ("jobs", "jobs_succeeded", "jobs_search"))
        self.say("L", "admin p50: " + ", ".join(
            f"{page} {percentile(f['times_ms'], 50):,.0f} ms ({len(f['times_ms'])} loads)"
            for page, f in loads.items()))
        if ch.SAMPLE_TABLE is not None:
            # As on a site whose workers run: the charts' minutes of the last hour recorded (by
            # the tally's own statement), which the overview reads instead of the hour's rows.
            recorded = ch.record_last_hour()
            found = ch.load_overview(("overview",), BIG_LOADS, BIG_PAGE_BUDGET)["overview"]
            self.figure("L", "page_overview_recorded_ms", found["times_ms"], "ms", rows=found["rows"],
                        bytes=found["bytes"], minutes=recorded)
            self.say("L", f"overview with the last hour's {recorded} minutes recorded: p50 "
                          f"{percentile(found['times_ms'], 50):,.0f} ms")
        db.execute(f"DELETE FROM {db.JOB_TABLE} WHERE id > %s", [base])

    def _big_prune(self, base: int, n: int) -> int:
        """L: the pruning service (bench/pruner.py) deleting finished rows while ``runjobs``
        drains, against the same drain without it, in turns; and the pruner alone. Each drain is
        after _reseed(), which first adds back as many finished rows as pruning took, so the
        table keeps its size. Returns the new base."""
        from . import db

        part = self.part("L")
        part["prune_drain_jobs"] = n
        drains: dict[str, list[dict[str, float]]] = {"alone": [], "pruning": [], "paced": []}
        prunes: dict[str, list[dict[str, Any]]] = {"pruning": [], "paced": []}
        alone: list[float] = []
        pruned: dict[str, Any] = {}
        deleted = 0
        for run in range(1, self.runs + 1):
            modes = ("alone", "pruning", "paced")
            for mode in modes[run % 3:] + modes[:run % 3]:
                base = self._reseed("L", db.JOB_TABLE, base, n, top_up=deleted)
                deleted = 0
                if mode == "alone":
                    drain = self._drain("L", db.JOB_TABLE, 2, n, f"L-prune{run}-alone", after_id=base)
                else:
                    pruner = self._start_pruner(base, BIG_PRUNE_PACE if mode == "paced" else None)
                    pruned = {}
                    try:
                        drain = self._drain("L", db.JOB_TABLE, 2, n, f"L-prune{run}-{mode}", after_id=base,
                                            after_workers=partial(self._stop_into, pruner, pruned))
                    finally:
                        if pruner.poll() is None:
                            pruner.kill()
                            pruner.wait()
                    deleted = pruned["deleted"]
                    first, last = drain["first_claim"], drain["last_outcome"]
                    pruned.update(self._prune_rate(pruned), during_drain=self._deleted_between(pruned, first, last))
                    prunes[mode].append(pruned)
                drains[mode].append(drain)
                self.say("L", f"run {run}/{self.runs}, drain {mode}: " + self._describe_drain(n, drain)
                              + (f"; pruned {pruned['deleted']:,} rows at {pruned['rows_per_minute']:,.0f}/min, "
                                 f"{pruned['during_drain']:,} in the drain's window" if mode != "alone" else ""))
            # The pruner alone, for its rate without a drain.
            base = self._reseed("L", db.JOB_TABLE, base, 0, top_up=deleted)
            pruner = self._start_pruner(base)
            time.sleep(BIG_PRUNE_ALONE)  # the pruner runs this long; its own clock gives the rate
            pruned = self._stop_pruner(pruner)
            deleted = pruned["deleted"]
            alone.append(self._prune_rate(pruned)["rows_per_minute"])
        base = self._reseed("L", db.JOB_TABLE, base, 0, top_up=deleted)
        part["finished_rows_after_pruning"] = db.scalar(
            f"SELECT count(*) FROM {db.JOB_TABLE} WHERE status = 'succeeded'")
        self._drain_figure("L", "drain_prune_alone", n, drains["alone"])
        self._drain_figure("L", "drain_prune_pruning", n, drains["pruning"])
        self._drain_figure("L", "drain_prune_paced", n, drains["paced"], pace=BIG_PRUNE_PACE)
        self.figure("L", "prune_rows_per_minute", [p["rows_per_minute"] for p in prunes["pruning"]], "rows/min")
        self.figure("L", "prune_paced_rows_per_minute", [p["rows_per_minute"] for p in prunes["paced"]], "rows/min",
                    pace=BIG_PRUNE_PACE)
        self.figure("L", "prune_alone_rows_per_minute", alone, "rows/min")
        part["prunes"] = prunes
        self.say("L", "pruning while draining: " + ", ".join(
            f"{mode} {statistics.median(p['rows_per_minute'] for p in found):,.0f} rows/min"
            for mode, found in prunes.items()) + f"; alone {statistics.median(alone):,.0f} rows/min")
        return base

    def _start_pruner(self, base: int, pace: float | None = None) -> subprocess.Popen[str]:
        """Start bench/pruner.py over the finished rows up to ``base`` (its cutoff: the newest of
        them; at most a quarter of them, so the table stays big), at ``pace`` rows a minute or as
        fast as it can, and wait until its first call has returned."""
        from . import db

        cutoff = db.scalar(f"SELECT max(finished_at) FROM {db.JOB_TABLE} WHERE id <= %s", [base])
        code_dir = os.environ.get("BENCH_CODE_DIR", str(REPO))
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.settings")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(self.log_dir / "L-pruner.log", "a") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.pruner", cutoff.isoformat(), str(self.sizes.finished // 4),
                 *([str(pace)] if pace else [])],
                cwd=code_dir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            )
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "started":
            proc.kill()
            raise RuntimeError(f"bench.pruner did not start ({line!r}); see {self.log_dir / 'L-pruner.log'}")
        return proc

    def _stop_into(self, proc: subprocess.Popen[str], found: dict[str, Any]) -> None:
        found.update(self._stop_pruner(proc))

    @staticmethod
    def _stop_pruner(proc: subprocess.Popen[str]) -> dict[str, Any]:
        # Not communicate(): it reads the pipe's file descriptor, past what readline() buffered.
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write("stop\n")
            proc.stdin.close()
        except BrokenPipeError:  # it had stopped already: nothing left that was due
            pass
        out = proc.stdout.read()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"bench.pruner exited with {proc.returncode}")
        return dict(json.loads(out.strip().splitlines()[-1]))

    @staticmethod
    def _prune_rate(pruned: dict[str, Any]) -> dict[str, float]:
        """Rows per minute from the start of the pruner's first call to the end of its last (the
        pace it keeps counts from there too)."""
        t1, n1 = pruned["calls"][-1]
        seconds = t1 - pruned["began"]
        return {"rows_per_minute": n1 / max(seconds, 1e-6) * 60, "seconds": seconds}

    @staticmethod
    def _deleted_between(pruned: dict[str, Any], first: float, last: float) -> int:
        """Rows the pruner deleted from ``first`` to ``last`` (Unix times), counting the calls that
        ended in that window."""
        inside = [n for t, n in pruned["calls"] if first <= t <= last]
        before = [n for t, n in pruned["calls"] if t < first]
        return (max(inside) - (before[-1] if before else 0)) if inside else 0

    # -- figures derived from several sections -----------------------------------------------------

    def derive(self) -> None:
        d_ratio = ratio(
            median_of(self.results, "D", "drain_2_processes"),
            median_of(self.results, "B", "drain_2_processes"),
        )
        e_ratio = ratio(
            median_of(self.results, "E", "drain_2_processes_1m"),
            median_of(self.results, "E", "drain_2_processes"),
        )
        if d_ratio is not None:
            self.part("D")["ratio_to_B"] = d_ratio
        g = self.results.get("G", {})
        for key, a, b in (
            ("now_vs_before", "drain_2_processes", "before_drain_2_processes"),
            ("keyed_vs_unkeyed", "keyed_drain", "unkeyed_drain"),
        ):
            value = ratio(median_of(self.results, "G", a), median_of(self.results, "G", b))
            if value is not None:
                g[key] = value
        if "claim_held" in g and "claim_runnable" in g:
            g["claim_held_vs_runnable"] = g["claim_held"]["p50_ms"] / g["claim_runnable"]["p50_ms"]
        if e_ratio is not None:
            self.part("E")["slowdown_1m"] = e_ratio
        h = self.results.get("H", {})
        if "claim_set_aside" in h and "claim_alone" in h:
            h["claim_set_aside_vs_alone"] = h["claim_set_aside"]["p50_ms"] / h["claim_alone"]["p50_ms"]
        big = self.results.get("L", {})
        for key, a, b in (
            ("ratio", "drain_2_processes", "drain_2_processes_empty"),
            ("raw_ratio", "raw_drain_2_processes", "raw_drain_2_processes_empty"),
            ("prune_slowdown", "drain_prune_pruning", "drain_prune_alone"),
            ("prune_paced_slowdown", "drain_prune_paced", "drain_prune_alone"),
        ):
            value = ratio(median_of(self.results, "L", a), median_of(self.results, "L", b))
            if value is not None:
                big[key] = value
        i = self.results.get("I", {})
        fan_in = ratio(median_of(self.results, "I", "fan_in_drain"), median_of(self.results, "I", "plain_drain"))
        if fan_in is not None:
            i["fan_in_vs_plain"] = fan_in
        if "claim_waiting" in i and "claim_alone" in i:
            i["claim_waiting_vs_alone"] = i["claim_waiting"]["p50_ms"] / i["claim_alone"]["p50_ms"]
        k = self.results.get("K", {})
        for key, a, b in (
            ("orm_vs_noop", "orm_drain", "noop_drain"),
            ("orm_reconnect_vs_noop", "orm_reconnect_drain", "noop_drain"),
            ("burst_drain_vs_enqueue", "burst_drain_rate_during", "burst_enqueue_rate"),
        ):
            value = ratio(median_of(self.results, "K", a), median_of(self.results, "K", b))
            if value is not None:
                k[key] = value


# -- the record of where and how it ran ------------------------------------------------------------


def _command(argv: list[str]) -> str:
    try:
        return subprocess.run(
            argv, cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def environment(args: argparse.Namespace, sizes: Sizes) -> dict[str, Any]:
    import django
    import psycopg

    from . import db
    from .server import throwaway_cluster

    settings = dict(
        db.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
            [
                [
                    "shared_buffers",
                    "synchronous_commit",
                    "fsync",
                    "max_connections",
                    "work_mem",
                    "autovacuum",
                    "max_wal_size",
                ]
            ],
        )
    )
    with open("/proc/meminfo") as f:
        mem_total = int(f.readline().split()[1])
    return {
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "sizes": asdict(sizes),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_kb": mem_total,
            "platform": platform.platform(),
            "uptime": _command(["uptime"]),
            "loadavg": os.getloadavg(),
        },
        "software": {
            "python": platform.python_version(),
            "django": django.__version__,
            "psycopg": psycopg.__version__,
            "postgresql": db.scalar("SHOW server_version"),
            "postgresql_settings": settings,
            "throwaway_cluster": throwaway_cluster(),
        },
        "git": {
            "commit": _command(["git", "rev-parse", "HEAD"]),
            "uncommitted_in_django_jobs": _command(
                ["git", "status", "--porcelain", "--", "django_jobs"]
            ).splitlines(),
        },
    }


def worker_logs(log_dir: Path) -> dict[str, Any]:
    """What the workers logged (WARNING and above only: every line is worth a look)."""
    lines: list[str] = []
    files = sorted(log_dir.glob("*.log"))
    for path in files:
        lines.extend(
            f"{path.name}: {line}"
            for line in path.read_text(errors="replace").splitlines()
            if line.strip()
        )
    events = Counter(m.group(1) for line in lines for m in [re.search(r"event=(\S+)", line)] if m)
    return {
        "dir": str(log_dir),
        "files": len(files),
        "lines": len(lines),
        "events": dict(events),
        "first_lines": lines[:20],
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sizes = Sizes.at(args.scale)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = (args.json or RESULTS_DIR / f"bench-{stamp}.json").resolve()
    log_dir = json_path.with_name(json_path.stem + "-logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    server = os.environ.get("DATABASE_URL") or LOCAL_SERVER

    sys.path.insert(0, str(REPO))
    from . import code

    code_dir, commit = code.export(args.at) if args.at else (REPO, None)
    # First on the path, here and (through BENCH_CODE_DIR) in every worker: see bench/code.py.
    sys.path.insert(0, str(code_dir))
    os.environ["BENCH_CODE_DIR"] = str(code_dir)
    fingerprint = code.fingerprint(code_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    from . import server as pg

    url = pg.with_database(server, args.database)
    os.environ["BENCH_DATABASE_URL"] = url
    import django

    django.setup()
    from django.core.management import call_command

    from . import db

    began = time.monotonic()
    print(
        f"bench: database {args.database} on {server.rsplit('@', 1)[-1].rsplit('/', 1)[0]}; "
        f"scale {args.scale:g}, {args.runs} run(s) per figure, sections {args.only}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs",
        flush=True,
    )
    pg.recreate_database(server, args.database)
    bench = Bench(args, url, log_dir)
    try:
        call_command("migrate", verbosity=0, interactive=False)
        db.create_ceiling_table()
        bench.results["meta"] = environment(args, sizes)
        bench.results["meta"]["code"] = {
            "directory": str(code_dir),
            "at": args.at,
            "commit": commit,
        }
        bench.run()
    finally:
        bench.stop_workers()
        from django.db import connections

        connections.close_all()
        if not args.keep_database:
            pg.drop_database(server, args.database)
    results = bench.results
    changed = code.fingerprint(code_dir) != fingerprint
    results["meta"]["code"]["changed_during_run"] = changed
    if args.at:
        shutil.rmtree(code_dir, ignore_errors=True)
    results["meta"].update(
        duration_seconds=round(time.monotonic() - began, 1), loadavg_at_end=os.getloadavg()
    )
    results["worker_logs"] = worker_logs(log_dir)
    results["targets"] = judge_targets(results)
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(render_table(table_rows(results)))
    logs = results["worker_logs"]
    print(
        f"\nworker logs: {logs['lines']} line(s) at WARNING or above in {logs['dir']}"
        + (
            f" ({', '.join(f'{k}×{v}' for k, v in logs['events'].items())})"
            if logs["events"]
            else ""
        )
    )
    print(
        f"took {results['meta']['duration_seconds']:.0f} s; load average at the end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if changed:
        print(
            "WARNING: django_jobs/ changed while this ran, so its figures mix versions of the "
            "code; run again, or pin a commit with --at HEAD"
        )
    print(f"results: {json_path}")
    errors = [s for s in SECTIONS if "error" in results.get(s, {})]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
