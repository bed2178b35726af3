"""A running worker survives a PostgreSQL restart: it waits the outage out and runs every job once.

The test starts a private cluster (tests/support/pgcluster.py), so it can stop and start the server
without disturbing the database the rest of the suite uses.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.support import REPO
from tests.support.pgcluster import PostgresCluster, find_bindir
from tests.support.procs import runjobs_env, wait_until

pytestmark = pytest.mark.subprocess

BATCH = 20


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine: install "
            "PostgreSQL, `pip install pgserver`, or set DJANGO_JOBS_PG_BINDIR"
        )
    with PostgresCluster(bindir) as pg:
        django_admin(pg.url, "migrate", "--noinput", "-v", "0")
        yield pg


def django_admin(url: str, *args: str) -> str:
    """Run ``django-admin ARGS…`` with the test settings against ``url``; return its output."""
    result = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=REPO, env=runjobs_env(url), capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, f"django-admin {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def enqueue_batch(url: str, label: str) -> None:
    django_admin(
        url, "shell", "-c",
        "from tests.testapp.jobs import record; "
        f"record.enqueue_many([[{label!r} + str(i)] for i in range({BATCH})])",
    )


def db_unavailable_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "event=db_unavailable" in line]


def scalar(url: str, sql: str) -> Any:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute(sql).fetchone()
    except psycopg.OperationalError:
        return None  # the server is still coming up
    return row[0] if row else None


def test_db_restart__worker_waits_out_the_outage_and_runs_every_job_once(
    cluster: PostgresCluster, worker_process: Any, tmp_path: Any
) -> None:
    url = cluster.url
    worker = worker_process("--concurrency", "2", "--no-scheduler", url=url)
    worker.wait_for_output("event=worker_started")

    enqueue_batch(url, "before ")
    wait_until(
        lambda: scalar(url, "SELECT count(*) FROM django_jobs_job WHERE status = 'succeeded'") == BATCH,
        timeout=60, message=lambda: f"the first batch to run; {worker.describe()}",
    )

    cluster.stop()
    # Two failed attempts, the second after a doubled backoff: it waits the outage out, neither
    # dying nor spinning.
    wait_until(
        lambda: len(db_unavailable_lines(worker.output())) >= 2,
        timeout=30, message=lambda: f"two event=db_unavailable lines; {worker.describe()}",
    )
    first, second = db_unavailable_lines(worker.output())[:2]
    assert "retry_in=0.5s" in first and "retry_in=1.0s" in second, worker.describe()
    assert worker.proc.poll() is None, f"the worker died with the database: {worker.describe()}"
    # Riding out an outage is being alive: the liveness probe (which reads no database) passes.
    probe = subprocess.run(
        [sys.executable, "-m", "django", "jobs", "health"], cwd=REPO, capture_output=True, text=True,
        env=runjobs_env(url, TMPDIR=str(tmp_path)), timeout=120, check=False,
    )
    assert probe.returncode == 0, f"{probe.stdout}{probe.stderr}"
    cluster.start()

    enqueue_batch(url, "after ")
    wait_until(
        lambda: scalar(url, "SELECT count(*) FROM django_jobs_job WHERE status = 'succeeded'") == 2 * BATCH,
        timeout=90, message=lambda: f"the second batch to run after the restart; {worker.describe()}",
    )

    assert worker.proc.poll() is None, worker.describe()
    assert "event=db_available" in worker.output(), worker.describe()
    assert scalar(url, "SELECT count(*) FROM django_jobs_job WHERE status <> 'succeeded'") == 0
    # What the job bodies wrote: every job exactly once, across the restart.
    assert scalar(url, "SELECT count(*) FROM django_jobs_job") == 2 * BATCH
    assert scalar(
        url,
        "SELECT count(*) FROM django_jobs_job j WHERE "
        "(SELECT count(*) FROM testapp_sideeffect s WHERE s.job_id = j.id) <> 1",
    ) == 0
    assert scalar(url, "SELECT count(*) FROM testapp_sideeffect") == 2 * BATCH
    assert worker.stop() == 0, worker.describe()


def test_db_outage__busy_workers_wait_out_ten_seconds_and_lose_or_repeat_nothing(
    cluster: PostgresCluster, worker_process: Any
) -> None:
    url = cluster.url
    django_admin(url, "shell", "-c", "from tests.testapp.models import SideEffect; "
                 "from django_jobs.models import Job; SideEffect.objects.all().delete(); "
                 "Job.objects.all().delete()")
    # Jobs that sleep, so both workers are mid-job when the server goes away.
    django_admin(
        url, "shell", "-c",
        "from tests.testapp.jobs import sleep_for; sleep_for.enqueue_many([[0.4]] * 40)",
    )
    workers = [worker_process("--concurrency", "2", "--no-scheduler", url=url) for _ in range(2)]
    wait_until(
        lambda: (scalar(url, "SELECT count(*) FROM django_jobs_job WHERE status = 'running'") or 0) >= 3,
        timeout=60, message="both workers to be busy",
    )

    cluster.stop()
    down_since = time.monotonic()
    # The outage itself is what is being tested: it lasts ten seconds, whatever the workers do.
    wait_until(lambda: time.monotonic() - down_since >= 10, timeout=15, message="ten seconds of outage")
    for worker in workers:
        assert worker.proc.poll() is None, f"a worker died with the database: {worker.describe()}"
        assert db_unavailable_lines(worker.output()), worker.describe()
    cluster.start()

    wait_until(
        lambda: scalar(url, "SELECT count(*) FROM django_jobs_job WHERE status = 'succeeded'") == 40,
        timeout=120, message=lambda: "every job to finish; " + " ".join(w.describe() for w in workers),
    )
    # Nothing stuck running, and every job body ran exactly once (the outage was shorter than
    # RESCUE_AFTER, so no job was rescued and re-run).
    assert scalar(url, "SELECT count(*) FROM django_jobs_job WHERE status <> 'succeeded'") == 0
    assert scalar(
        url,
        "SELECT count(*) FROM django_jobs_job j WHERE "
        "(SELECT count(*) FROM testapp_sideeffect s WHERE s.job_id = j.id) <> 1",
    ) == 0
    for worker in workers:
        assert "event=db_available" in worker.output(), worker.describe()
        assert worker.stop() == 0, worker.describe()
