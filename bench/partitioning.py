"""What partitioning the jobs table by time would change, measured: ``python -m bench.partitioning``.

Not a section of the benchmark: a one-off measurement behind docs/explanation/partitioning.md.
In a scratch database of its own (``--database``, dropped afterwards) it migrates django_jobs'
tables, then builds two tables with ``--rows`` finished jobs each, spread evenly over ``--days``
days:

- ``plain_job``: ``LIKE django_jobs_job INCLUDING ALL``, the table as it ships;
- ``part_job``: the same columns plus ``done_at timestamptz NOT NULL DEFAULT 'infinity'``,
  range-partitioned on it: one partition per day for finished jobs, and ``part_job_live``
  (``'infinity'`` up) for jobs that haven't finished. The primary key is ``(id, done_at)``, since a
  unique index must hold the partition key; the partial unique indexes on ``unique_key`` can't be
  built on the parent for the same reason (they are left out). Every other index of the jobs
  table is built on the parent (and so on each partition).

``done_at`` is a column of its own because the partition key of a primary key can't be NULL,
and ``finished_at`` is NULL until a job ends. An outcome sets it, which moves the row from the
live partition to its day's (an UPDATE across partitions is a DELETE and an INSERT).

On each table it measures, with the harness's raw-loop statements (bench/ceiling.py's shape), in
``--rounds`` rounds taken in turns (medians reported): a batch INSERT of ``--jobs`` queued rows
and as many one-row INSERTs, one per transaction; a drain of those jobs by one process claiming
100 at a time, after one claim of 100 under EXPLAIN (ANALYZE, BUFFERS); on the partitioned table,
the same drain again with statements that name the live partition. Then, once, deleting the
oldest day: on ``plain_job`` with the pruning service's own batched
``DELETE`` (1,000 rows a statement) and the VACUUM that has to follow, on ``part_job`` by
``DETACH PARTITION`` and ``DROP TABLE``. Prints a table; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BATCH = 100  # jobs per claim, as the raw loop
PRUNE_BATCH = 1000  # rows per DELETE, as django_jobs' PRUNE_BATCH default


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def build(rows: int, days: int) -> dict[str, Any]:
    from . import db

    found: dict[str, Any] = {}
    # The plain table, as shipped.
    db.execute("CREATE TABLE plain_job (LIKE django_jobs_job INCLUDING ALL)")
    # The partitioned one: the same columns, done_at, and every index but the unique ones.
    db.execute(
        "CREATE TABLE part_job (LIKE django_jobs_job INCLUDING DEFAULTS INCLUDING IDENTITY, "
        "done_at timestamptz NOT NULL DEFAULT 'infinity', PRIMARY KEY (id, done_at)) "
        "PARTITION BY RANGE (done_at)"
    )
    db.execute("CREATE TABLE part_job_live PARTITION OF part_job FOR VALUES FROM ('infinity') TO (MAXVALUE)")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(days + 1):
        start = today - timedelta(days=days - day)
        db.execute(
            f"CREATE TABLE part_job_d{day} PARTITION OF part_job FOR VALUES FROM (%s) TO (%s)",
            [start, start + timedelta(days=1)],
        )
    indexes = db.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'django_jobs_job' "
        "AND indexdef NOT LIKE 'CREATE UNIQUE%%'"
    )
    for name, definition in indexes:
        db.execute(
            definition.replace(f"INDEX {name} ON public.django_jobs_job", f"INDEX part_{name} ON part_job")
        )
    found["left_out"] = [
        name for (name,) in db.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'django_jobs_job' AND indexdef LIKE 'CREATE UNIQUE%%' "
            "AND indexname <> 'django_jobs_job_pkey'"
        )
    ]
    # Finished rows, evenly over the last ``days`` days (the oldest first), in both tables.
    spacing = days * 86400 / rows
    for table in ("plain_job", "part_job"):
        columns, exprs, params = db.row_template("finished")
        exprs = [e.replace("interval '10 milliseconds'", f"interval '{spacing:.6f} seconds'") for e in exprs]
        extra_col, extra_expr = ("", "") if table == "plain_job" else (", done_at", ", " + exprs[columns.index('"finished_at"')])
        started = time.perf_counter()
        db.execute(
            f"INSERT INTO {table} ({', '.join(columns)}{extra_col}) "
            f"SELECT {', '.join(exprs)}{extra_expr} FROM generate_series(1, %(n)s) AS g",
            {**dict(params), "n": rows},
        )
        found[f"seed_ms_{table}"] = _ms(started)
        db.vacuum_analyze(table)
    found["sizes"] = {
        "plain_job": db.scalar("SELECT pg_total_relation_size('plain_job')"),
        "part_job": db.scalar("SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('part_job')"),
    }
    return found


def inserts(table: str, jobs: int) -> dict[str, float]:
    """A batch INSERT of ``jobs`` queued rows, then as many one-row INSERTs in autocommit."""
    from django.db import connection

    from . import db

    columns, exprs, params = db.row_template("queued")
    started = time.perf_counter()
    db.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(exprs)} FROM generate_series(1, %(n)s) AS g",
        {**dict(params), "n": jobs},
    )
    batch_ms = _ms(started)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(exprs)})"
    one = dict(params)
    with connection.cursor() as cursor:
        started = time.perf_counter()
        for _ in range(jobs):
            cursor.execute(sql, one)
        single_ms = _ms(started)
    return {"batch_us_per_row": batch_ms * 1000 / jobs, "one_per_transaction_us": single_ms * 1000 / jobs}


def drain(table: str, partitioned: bool, live_only: bool = False) -> dict[str, Any]:
    """Claim and complete every queued job, 100 at a time, in one process; and one claim of 100
    under EXPLAIN (ANALYZE, BUFFERS) first (rolled back).

    On the partitioned table the outcome sets ``done_at`` (moving the row to its day's
    partition). ``live_only``: every statement also says ``done_at = 'infinity'``, so that the
    planner reads the live partition only; without it, the statements are the plain table's and
    look in every partition.
    """
    from django.db import transaction

    from . import ceiling, db

    db.analyze(table)
    claim = ceiling.claim_sql(table)
    complete = ceiling.complete_sql(table)
    if partitioned:
        complete = complete.replace("finished_at = now(),", "finished_at = now(), done_at = now(),")
    if live_only:
        claim = claim.replace(f"FROM {table} WHERE ", f"FROM {table} WHERE done_at = 'infinity' AND ")
        claim = claim.replace(f"WHERE {table}.id = claimable.id", f"WHERE {table}.id = claimable.id "
                              f"AND {table}.done_at = 'infinity'")
        complete = complete.replace("WHERE id = ANY(%s)", "WHERE done_at = 'infinity' AND id = ANY(%s)")
    params = {"limit": BATCH, "worker_id": "bench:partitioning"}
    with transaction.atomic():
        plan = "\n".join(r[0] for r in db.execute("EXPLAIN (ANALYZE, BUFFERS) " + claim, params))
        transaction.set_rollback(True)
    queued = db.scalar(f"SELECT count(*) FROM {table} WHERE status = 'queued'")
    started = time.perf_counter()
    done = 0
    while rows := db.execute(claim, params):
        db.execute(complete, ([r[0] for r in rows], params["worker_id"]))
        done += len(rows)
    seconds = time.perf_counter() - started
    if done != queued:
        raise RuntimeError(f"{table}: drained {done} of {queued}")
    return {"jobs": done, "jobs_per_s": done / seconds, "claim_ms": float(_exec_ms(plan)), "claim_explain": plan}


def _queue(table: str, jobs: int) -> None:
    from . import db

    columns, exprs, params = db.row_template("queued")
    db.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(exprs)} FROM generate_series(1, %(n)s) AS g",
        {**dict(params), "n": jobs},
    )


def prune_day(table: str, partitioned: bool, days: int) -> dict[str, Any]:
    """Delete the oldest day's rows: batched DELETEs and a VACUUM, or DETACH and DROP."""
    from . import db

    if partitioned:
        rows = db.scalar("SELECT count(*) FROM part_job_d0")
        started = time.perf_counter()
        db.execute("ALTER TABLE part_job DETACH PARTITION part_job_d0")
        detach_ms = _ms(started)
        started = time.perf_counter()
        db.execute("DROP TABLE part_job_d0")
        drop_ms = _ms(started)
        return {"rows": rows, "detach_ms": detach_ms, "drop_ms": drop_ms,
                "rows_per_minute": rows / ((detach_ms + drop_ms) / 60000)}
    # The same rows as the oldest partition holds: finished before its upper bound.
    cutoff = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    # The pruning service's statement (django_jobs/db/maintenance.py), on this table.
    from django_jobs.db import maintenance

    sql = maintenance.PRUNE_BATCH_PG.replace(maintenance.TABLE, table)
    started = time.perf_counter()
    rows = 0
    while deleted := db.scalar(sql, ["succeeded", cutoff, PRUNE_BATCH]):
        rows += deleted
    delete_ms = _ms(started)
    started = time.perf_counter()
    db.execute(f"VACUUM {table}")
    vacuum_ms = _ms(started)
    return {"rows": rows, "delete_ms": delete_ms, "vacuum_ms": vacuum_ms,
            "rows_per_minute": rows / (delete_ms / 60000),
            "rows_per_minute_with_vacuum": rows / ((delete_ms + vacuum_ms) / 60000)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.partitioning", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="finished rows per table (default 1,000,000)")
    parser.add_argument("--days", type=int, default=10, help="days they are spread over (default 10)")
    parser.add_argument("--jobs", type=int, default=10_000, help="queued jobs inserted and drained (default 10,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of inserts and drains, in turns (default 3)")
    parser.add_argument("--database", default="django_jobs_partitioning")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    from . import server as pg

    server = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    os.environ["BENCH_DATABASE_URL"] = pg.with_database(server, args.database)
    pg.recreate_database(server, args.database)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from . import db

    results: dict[str, Any] = {"rows": args.rows, "days": args.days, "jobs": args.jobs, "rounds": args.rounds,
                               "loadavg_at_start": os.getloadavg()}
    try:
        call_command("migrate", verbosity=0, interactive=False)
        results["build"] = build(args.rows, args.days)
        # Rounds in turns (who goes first alternates), so that both tables see the same machine;
        # the table shows the medians.
        tables = [("plain_job", False), ("part_job", True)]
        rounds: dict[str, dict[str, list[Any]]] = {t: {} for t, _ in tables}
        for round_ in range(args.rounds):
            db.checkpoint()
            for table, partitioned in tables if round_ % 2 == 0 else tables[::-1]:
                found = rounds[table]
                found.setdefault("insert", []).append(inserts(table, args.jobs))
                found.setdefault("drain", []).append(drain(table, partitioned))
                if partitioned:
                    _queue(table, args.jobs)
                    found.setdefault("drain_live_only", []).append(drain(table, partitioned, live_only=True))
        for table, partitioned in tables:
            results[table] = {key: _median(runs) for key, runs in rounds[table].items()}
            results[table]["rounds"] = rounds[table]
            results[table]["prune_day"] = prune_day(table, partitioned, args.days)
    finally:
        connections.close_all()
        pg.drop_database(server, args.database)
    results["loadavg_at_end"] = os.getloadavg()
    lines = [("", "plain", "partitioned")]
    p, q = results["plain_job"], results["part_job"]
    lines += [
        ("batch INSERT, µs per row", f"{p['insert']['batch_us_per_row']:.1f}", f"{q['insert']['batch_us_per_row']:.1f}"),
        ("one-row INSERT per transaction, µs", f"{p['insert']['one_per_transaction_us']:.0f}",
         f"{q['insert']['one_per_transaction_us']:.0f}"),
        ("drain, 1 process, jobs/s", f"{p['drain']['jobs_per_s']:,.0f}", f"{q['drain']['jobs_per_s']:,.0f}"),
        ("one claim of 100, ms", f"{p['drain']['claim_ms']:.2f}", f"{q['drain']['claim_ms']:.2f}"),
        ("… statements reading the live partition only: drain", "", f"{q['drain_live_only']['jobs_per_s']:,.0f}"),
        ("… one claim of 100, ms", "", f"{q['drain_live_only']['claim_ms']:.2f}"),
        ("oldest day's rows", f"{p['prune_day']['rows']:,}", f"{q['prune_day']['rows']:,}"),
        ("… deleted in, s", f"{p['prune_day']['delete_ms'] / 1000:.1f} (+ VACUUM {p['prune_day']['vacuum_ms'] / 1000:.1f})",
         f"{(q['prune_day']['detach_ms'] + q['prune_day']['drop_ms']) / 1000:.2f} (DETACH + DROP)"),
        ("… rows/min", f"{p['prune_day']['rows_per_minute']:,.0f}", f"{q['prune_day']['rows_per_minute']:,.0f}"),
        ("table and indexes, MB", f"{results['build']['sizes']['plain_job'] / 2**20:,.0f}",
         f"{results['build']['sizes']['part_job'] / 2**20:,.0f}"),
    ]
    width = max(len(line[0]) for line in lines)
    for line in lines:
        print(f"{line[0]:<{width}}  {line[1]:>24}  {line[2]:>24}")
    print(f"load average {results['loadavg_at_start']} → {results['loadavg_at_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric figure's median over the rounds; the first round's texts (plans)."""
    return {
        key: statistics.median(r[key] for r in runs) if isinstance(value, (int, float)) else value
        for key, value in runs[0].items()
    }


def _exec_ms(plan: str) -> str:
    line = next((x for x in plan.splitlines() if x.startswith("Execution Time")), "")
    return line.split(":")[1].strip().removesuffix(" ms") if line else "?"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
