"""A worker stays honest about what it holds: lost replies, locked tables, odd text, namespaces.

Real ``runjobs`` processes against PostgreSQL; the network failures go through a local TCP proxy
that loses the server's replies, the namespaces through ``unshare``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from django.db import connection

from django_jobs.models import Job, JobStatus, Worker
from tests.support import REPO
from tests.support.procs import WorkerProcess, database_url, runjobs_env, wait_until
from tests.support.tcpproxy import ReplyLosingProxy
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

FAST = {"HEARTBEAT_INTERVAL": 0.2, "RESCUE_AFTER": 2.0, "STOP_GRACE": 1.0, "POLL_INTERVAL": 0.1}


@pytest.fixture
def workers(worker_process):
    def start(*args: str, settings: dict | None = None, url: str | None = None) -> WorkerProcess:
        tuned = json.dumps({**FAST, **(settings or {})})
        return worker_process(*args, url=url, env={"DJANGO_JOBS_TEST_SETTINGS": tuned})

    return start


def unfinished() -> int:
    return Job.objects.exclude(status__in=[JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.STOPPED]).count()


def test_lone_surrogate_in_an_error__is_stored_escaped_and_the_worker_goes_on(workers):
    bad = jobs.fail_with_undecodable_file_name.enqueue()
    worker = workers("--concurrency", "1", "--no-scheduler")
    wait_until(lambda: Job.objects.get(pk=bad.pk).status == JobStatus.DEAD, timeout=30,
               message=lambda: f"the failure to be stored: {worker.describe()}")
    bad.refresh_from_db()
    assert bad.last_error == "ValueError: cannot parse report-\\udcff.csv"
    error = bad.history[-1]["error"]
    assert error["class"] == "builtins.ValueError" and "report-\\udcff.csv" in error["traceback"]
    assert bad.progress["message"] == "reading report-\\udcff.csv"

    after = jobs.add.enqueue(2, 3)
    wait_until(lambda: Job.objects.get(pk=after.pk).status == JobStatus.SUCCEEDED, timeout=30,
               message=lambda: f"the next job on the same worker: {worker.describe()}")
    assert worker.proc.poll() is None, worker.describe()


def test_claim_replies_lost__no_job_is_left_running_under_a_live_worker(workers):
    # Every connection of two draining workers is cut, again and again, after the server got a
    # statement and before its reply arrived. A claim that committed then holds rows the worker
    # never saw; an outcome that committed is sent again. Rescue is 10 minutes away, so only
    # the worker itself can give those rows back.
    created = jobs.noop.enqueue_many([[] for _ in range(3000)])
    proxy = ReplyLosingProxy((connection.settings_dict["HOST"] or "127.0.0.1",
                              int(connection.settings_dict["PORT"] or 5432)))
    url = database_url().replace(f":{connection.settings_dict['PORT'] or 5432}/", f":{proxy.port}/")
    slow_rescue = {"RESCUE_AFTER": 600.0, "RECONNECT_BACKOFF": 0.05}
    pool = [workers("--concurrency", "2", "--worker-id", f"lossy-{n}", "--no-scheduler",
                    settings=slow_rescue, url=url) for n in range(2)]
    cuts = 0
    try:
        for _ in range(12):
            if not Job.objects.filter(status=JobStatus.QUEUED).exists():
                break
            cuts += proxy.lose_replies(0.05)
            wait_until(lambda: len(proxy.pairs) >= 2, timeout=10,
                       message="the workers to reconnect")
        assert cuts >= 6
        wait_until(lambda: unfinished() == 0, timeout=60,
                   message=lambda: f"{unfinished()} jobs unfinished: {Job.objects.filter(status=JobStatus.RUNNING).count()} running")
    finally:
        proxy.close()
    assert Job.objects.filter(status=JobStatus.SUCCEEDED).count() == len(created)
    for job in Job.objects.all():
        outcomes = [h["outcome"] for h in job.history]
        assert outcomes.count("succeeded") == 1 and set(outcomes) <= {"succeeded", "handed_back"}, job.history
        assert job.attempts == 1
    for worker in pool:
        assert "event=outcome_fenced" not in worker.output(), worker.describe()


def test_live_worker_that_never_listed_a_running_job__has_it_rescued(workers, second_connection):
    # The backstop behind the worker's own recovery: a job running under a live worker that
    # the worker's published list doesn't name, RESCUE_AFTER after the claim.
    job = jobs.add.enqueue(1, 2)
    holder = workers("--concurrency", "1", "--queue", "elsewhere", "--worker-id", "holder", "--no-scheduler")
    wait_until(lambda: Worker.objects.filter(worker_id="holder", listed_at__isnull=False).exists(),
               message="the holder to register")
    second_connection.execute(
        "UPDATE django_jobs_job SET status = 'running', attempts = 1, worker_id = 'holder', "
        "started_at = now() WHERE id = %s", [job.pk])
    rescuer = workers("--concurrency", "1", "--worker-id", "rescuer", "--no-scheduler")
    wait_until(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, timeout=30,
               message=lambda: f"rescue: {rescuer.describe()}")
    job.refresh_from_db()
    lost, done = job.history
    assert lost["outcome"] == "lost" and lost["worker"] == "holder"
    assert "never listed it" in lost["error"]["message"]
    assert done["worker"] == "rescuer"
    assert holder.proc.poll() is None


def test_job_table_locked_past_the_rescue_window__no_running_job_runs_twice(workers, second_connection):
    # A migration or VACUUM FULL holds the job table for longer than RESCUE_AFTER while jobs run
    # and a new worker starts (a deploy). The workers only wait for the lock: they will record
    # their jobs' outcomes, so they must go on beating and nobody may rescue their jobs.
    created = [jobs.sleep_for.enqueue(1.0) for _ in range(4)]
    pool = [workers("--concurrency", "2", "--worker-id", f"old-{n}", "--no-scheduler") for n in range(2)]
    wait_until(lambda: SideEffect.objects.count() == 4, timeout=30, message="all four jobs to start")
    rescue_after = FAST["RESCUE_AFTER"]
    second_connection.execute("BEGIN")
    second_connection.execute("LOCK TABLE django_jobs_job IN ACCESS EXCLUSIVE MODE")
    try:
        # The lock is the scenario: held for twice the rescue window, with a worker starting
        # (and so rescuing) 1.5 windows in.
        time.sleep(1.5 * rescue_after)
        pool.append(workers("--concurrency", "1", "--worker-id", "new", "--no-scheduler"))
        time.sleep(0.5 * rescue_after)
    finally:
        second_connection.execute("COMMIT")
    wait_until(lambda: unfinished() == 0, timeout=30, message="the jobs to finish")
    for job in created:
        job.refresh_from_db()
        assert [h["outcome"] for h in job.history] == ["succeeded"], job.history
    assert SideEffect.objects.count() == 4
    assert "event=waiting_on_lock" in pool[0].output() + pool[1].output()


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                    reason="needs unshare(1) and root for a PID namespace")
def test_worker_in_another_pid_namespace__is_not_taken_for_dead_at_startup(workers, tmp_path):
    # Two containers sharing the host's network (and so its host name) but not its PIDs: the
    # worker inside has a pid that is free out here. A worker starting out here must not conclude
    # from kill(pid, 0) that it died and rescue (and so rerun) its running job.
    pid = next(p for p in range(30000, 20000, -1) if not os.path.exists(f"/proc/{p}"))
    settings = json.dumps({**FAST, "RESCUE_AFTER": 600.0})
    env = runjobs_env(database_url(), DJANGO_JOBS_TEST_SETTINGS=settings)
    log = open(tmp_path / "inside.log", "wb")
    inside = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
         f'echo {pid - 1} > /proc/sys/kernel/ns_last_pid; '
         f'"{sys.executable}" -m django runjobs --concurrency 1 --no-scheduler'],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        job = jobs.sleep_for.enqueue(3.0)
        wait_until(lambda: SideEffect.objects.filter(job_id=job.pk).exists(), timeout=30,
                   message=lambda: f"the job to start inside: {(tmp_path / 'inside.log').read_text()}")
        job.refresh_from_db()
        assert job.worker_id.endswith(f":{pid}"), job.worker_id
        outside = workers("--concurrency", "1", "--no-scheduler", settings={"RESCUE_AFTER": 600.0})
        outside.wait_for_output("event=worker_started")
        wait_until(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, timeout=30,
                   message=lambda: (tmp_path / "inside.log").read_text())
        job.refresh_from_db()
        assert [h["outcome"] for h in job.history] == ["succeeded"], job.history
        assert SideEffect.objects.filter(job_id=job.pk).count() == 1
    finally:
        os.killpg(inside.pid, 9)
        inside.wait(10)
        log.close()


# -- manage.py jobs health: the liveness probe ---------------------------------------------------


def test_jobs_health__healthy_worker_exits_0_and_a_stopped_one_non_zero_with_the_reason(worker_process, tmp_path):
    import signal

    # A temporary directory of its own: only this test's worker counts as "every worker".
    private = {"TMPDIR": str(tmp_path)}

    def _health(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "django", "jobs", "health", *args], cwd=REPO, capture_output=True, text=True,
            env=runjobs_env(database_url(), **private), timeout=60,
        )

    worker = worker_process("--concurrency", "1", "--worker-id", "probed",
                            env={"DJANGO_JOBS_TEST_SETTINGS": json.dumps(FAST), **private})
    healthy = wait_until(lambda: (r := _health("--worker-id", "probed", "--stale-after", "1.5")).returncode == 0 and r,
                         timeout=30, message=lambda: f"a healthy probe; {worker.describe()}")
    assert healthy.stdout.startswith("ok worker=probed "), healthy.stdout
    everyone = _health("--stale-after", "1.5")  # every worker on this host (of this database)
    assert everyone.returncode == 0 and "worker=probed " in everyone.stdout, everyone.stderr

    os.kill(worker.pid, signal.SIGSTOP)  # the main loop and the heartbeat thread both stop
    try:
        stalled = wait_until(
            lambda: (r := _health("--worker-id", "probed", "--stale-after", "1.5")).returncode != 0 and r,
            timeout=30, message="the probe to fail",
        )
        reason = stalled.stderr.strip().splitlines()
        # Stopped, it neither beats nor turns: whichever went quiet first past 1.5 s is the reason.
        assert len(reason) == 1 and "worker probed" in reason[0], stalled.stderr
        assert "heartbeat stale" in reason[0] or "loop stalled" in reason[0], stalled.stderr
        assert stalled.returncode == 1
        assert _health("--stale-after", "1.5").returncode == 1
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    wait_until(lambda: _health("--worker-id", "probed", "--stale-after", "1.5").returncode == 0,
               timeout=30, message="the probe to pass again once the worker runs")
    worker.stop()
    gone = _health("--worker-id", "probed")
    assert gone.returncode == 1 and "no worker probed is running" in gone.stderr
