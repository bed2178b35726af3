"""A rolling deploy with real ``runjobs`` processes: old workers (without tests.v2app) overlap the
new code that enqueues its job. The old worker leaves the new job queued; a new worker started
later runs it once; a row naming something no code registers is never run by anyone and ends
dead only after UNKNOWN_JOB_GRACE."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection

from django_jobs.models import Job, JobStatus
from tests.support.procs import wait_until
from tests.testapp import jobs
from tests.testapp.models import SideEffect
from tests.v2app.jobs import added_in_v2

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

FAST = {"HEARTBEAT_INTERVAL": 0.2, "RESCUE_AFTER": 2.0, "POLL_INTERVAL": 0.2}


def _start(worker_process: Any, worker_id: str, *, old: bool, **settings: Any) -> Any:
    env = {"DJANGO_JOBS_TEST_SETTINGS": json.dumps({**FAST, **settings})}
    if old:
        env["DJANGO_JOBS_TEST_OLD_CODE"] = "1"
    return worker_process("--concurrency", "2", "--no-scheduler", "--worker-id", worker_id, env=env)


def _status(job: Job) -> tuple[str, int, bool]:
    job.refresh_from_db()
    return job.status, job.attempts, job.parked_at is not None


def test_rolling_deploy__a_new_job_waits_for_a_worker_that_knows_it(worker_process: Any) -> None:
    old = _start(worker_process, "old-1", old=True)
    new_job = added_in_v2.enqueue("v2")
    known = jobs.record.enqueue("v1")

    # The old worker runs what it knows and sets the new job aside: still queued, no attempt.
    wait_until(lambda: SideEffect.objects.filter(label="v1").exists(), timeout=30, message=old.describe)
    wait_until(lambda: _status(new_job) == (JobStatus.QUEUED, 0, True), timeout=30,
               message=lambda: f"{_status(new_job)}; {old.describe()}")
    old.wait_for_output("event=parked name=tests.v2app.jobs.added_in_v2")
    # (The body's record comes before its outcome, which the worker writes a moment later.)
    wait_until(lambda: Job.objects.get(id=known.id).status == JobStatus.SUCCEEDED, timeout=30,
               message=old.describe)

    # A new worker starts (the deploy goes on): it puts the job back and runs it, once.
    new = _start(worker_process, "new-1", old=False)
    wait_until(lambda: _status(new_job)[0] == JobStatus.SUCCEEDED, timeout=30,
               message=lambda: f"{_status(new_job)}; {new.describe()}\n{old.describe()}")
    assert SideEffect.objects.filter(label="v2").count() == 1
    assert "event=started" not in "".join(
        line for line in old.output().splitlines() if "tests.v2app" in line
    ), "the old worker must never start a job it doesn't know"


def test_rolling_deploy__a_row_naming_no_job_never_runs_and_ends_dead_after_the_grace(
    worker_process: Any,
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_jobs_job (name, args, kwargs, queue, priority, status, attempts, max_attempts, "
            "run_at, created_at, unique_while, worker_id, history, last_error) VALUES ('os.system', "
            "'[\"touch /tmp/pwned\"]', '{}', 'default', 0, 'queued', 0, 3, now(), now(), 'active', '', '[]', '') "
            "RETURNING id"
        )
        job_id = cursor.fetchone()[0]
    row = Job.objects.get(id=job_id)
    worker = _start(worker_process, "w-1", old=False, UNKNOWN_JOB_GRACE=1.0)

    wait_until(lambda: _status(row)[0] == JobStatus.DEAD, timeout=30,
               message=lambda: f"{_status(row)}; {worker.describe()}")
    row.refresh_from_db()
    assert row.attempts == 0 and row.started_at is None  # never started by anyone
    assert row.last_error.startswith("JobNotRegistered: no live worker has registered a job named 'os.system'")
    assert "event=started" not in worker.output()
