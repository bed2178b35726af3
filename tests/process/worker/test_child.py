"""The worker's child processes: as PID 1, out of file descriptors, and under jobs that misuse them.

Real ``runjobs`` processes against the test database; jobs are in tests/testapp/jobs.py.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from django_jobs.models import Job, JobStatus
from tests.support import REPO
from tests.support.procs import WorkerProcess, database_url, runjobs_env, wait_until
from tests.testapp import jobs
from tests.testapp.models import SideEffect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

FAST = {"HEARTBEAT_INTERVAL": 0.2, "RESCUE_AFTER": 2.0, "STOP_GRACE": 1.0, "POLL_INTERVAL": 0.1}


class NamespacedWorker(WorkerProcess):
    """``unshare --pid --fork runjobs``: the worker is PID 1 of a new PID namespace.

    ``proc`` is unshare; signals go to the worker, unshare's child (PID 1 inside, which receives
    only the signals it has handlers for: the worker's SIGTERM and SIGINT).
    """

    def worker_pid(self) -> int:
        def child() -> int | None:
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                children = (task / "children").read_text().split()
                if children:
                    return int(children[0])
            return None

        return wait_until(child, message=lambda: f"unshare's child in {self.describe()}")

    def signal(self, sig: int) -> None:
        import os

        os.kill(self.worker_pid(), sig)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start runjobs (fast heartbeats) as a subprocess, optionally as PID 1 or with limits."""
    started: list[WorkerProcess] = []

    def start(*args: str, pid1: bool = False, preexec_fn: Callable[[], Any] | None = None) -> WorkerProcess:
        command = [sys.executable, "-m", "django", "runjobs", *args]
        if pid1:
            unshare = shutil.which("unshare")
            if unshare is None:
                pytest.skip("needs util-linux unshare")
            command = [unshare, "--pid", "--fork", "--mount-proc", *command]
        log_path = tmp_path / f"runjobs-{len(started)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=runjobs_env(database_url(), DJANGO_JOBS_TEST_SETTINGS=json.dumps(FAST), TMPDIR=str(tmp_path)),
                start_new_session=True, preexec_fn=preexec_fn,
            )
        handle = (NamespacedWorker if pid1 else WorkerProcess)(proc, log_path, list(args))
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.kill()
    forked = {" ".join(h.args): h.fork_warnings() for h in started if h.fork_warnings()}
    assert not forked, f"a worker forked while running threads: {forked}"


def status_of(job: Job) -> str:
    job.refresh_from_db()
    return job.status


def started(job: Job) -> bool:
    return SideEffect.objects.filter(job_id=job.id).exists()


# -- a worker that is PID 1 (the exec-form command of a container) -----------------------------


@pytest.fixture
def as_pid1() -> None:
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"can't create a PID namespace here: {probe.stderr.decode().strip()}")


def test_pid1__runs_jobs(start_worker, as_pid1):
    created = [jobs.add.enqueue(i, 1) for i in range(5)]
    worker = start_worker("--burst", "--concurrency", "2", pid1=True)
    assert worker.wait(timeout=60) == 0, worker.describe()
    assert "pid=1" in worker.output()
    for job in created:
        assert status_of(job) == JobStatus.SUCCEEDED, (job.history, worker.describe())


def test_pid1__stop_request_kills_a_job_that_ignores_it(start_worker, as_pid1):
    stuck = jobs.sleep_for.enqueue(120.0)
    start_worker("--concurrency", "1", pid1=True)
    wait_until(lambda: started(stuck), timeout=30, message="the job to start")
    assert stuck.stop() is True
    wait_until(lambda: status_of(stuck) == JobStatus.STOPPED, timeout=15, message="the stop")
    assert stuck.history[-1]["outcome"] == "stopped"


def test_pid1__timeout_kills_the_attempt(start_worker, as_pid1):
    job = jobs.sleep_forever.enqueue()  # timeout=0.5, max_attempts=2
    start_worker("--concurrency", "1", pid1=True)
    wait_until(lambda: status_of(job) == JobStatus.DEAD, timeout=30, message="two timeouts")
    assert [h["outcome"] for h in job.history] == ["timeout", "timeout"]
    assert job.history[-1]["error"]["class"] == "django_jobs.exceptions.JobTimeout"


def test_pid1__sigterm_lets_the_running_job_finish_within_grace(start_worker, as_pid1):
    job = jobs.sleep_for.enqueue(1.0)
    worker = start_worker("--concurrency", "1", "--grace", "20", pid1=True)
    wait_until(lambda: started(job), timeout=30, message="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.describe()
    assert status_of(job) == JobStatus.SUCCEEDED and job.attempts == 1
    assert "mode=graceful" in worker.output()


# -- a worker that can't start its children --------------------------------------------------------


def test_pid1__reaps_the_process_a_timed_out_job_left_behind(start_worker, as_pid1, tmp_path):
    # The job starts a process and is killed at its timeout: the process is orphaned, and in a
    # PID namespace its new parent is the worker (PID 1). Unreaped, it would stay <defunct>.
    pid_file = tmp_path / "orphan.pid"
    job = jobs.orphan_a_process.enqueue(str(pid_file), seconds=3.0)
    worker = start_worker("--concurrency", "1", pid1=True)
    inner_pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=30,
                               message=lambda: f"the orphan's pid; {worker.describe()}"))
    host_pid = wait_until(lambda: _host_pid(inner_pid, worker.worker_pid()), timeout=5,
                          message="the orphan, as seen from outside the namespace")
    wait_until(lambda: status_of(job) == JobStatus.DEAD, timeout=30, message="the attempt's timeout")
    assert job.history[-1]["outcome"] == "timeout"
    # It exits about 3 s after it started; reaped, it leaves no trace in /proc.
    wait_until(lambda: not Path(f"/proc/{host_pid}").exists(), timeout=20,
               message=lambda: f"the orphan to be reaped (state {_state(host_pid)}); {worker.describe()}")
    assert not [pid for pid in _children(worker.worker_pid()) if _state(pid) == "Z"]


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _host_pid(inner_pid: int, worker_host_pid: int) -> int | None:
    """The pid outside the worker's namespace of the process whose pid inside it is ``inner_pid``."""
    namespace = os.readlink(f"/proc/{worker_host_pid}/ns/pid")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "pid") != namespace:
                continue
            nspid = next(x for x in (entry / "status").read_text().splitlines() if x.startswith("NSpid:"))
        except (OSError, StopIteration):
            continue
        if nspid.split()[-1] == str(inner_pid):
            return int(entry.name)
    return None


def test_children_cannot_start__worker_exits_non_zero_with_the_reason(start_worker):
    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    job = jobs.record.enqueue("waits")
    worker = start_worker("--concurrency", "100", preexec_fn=few_files)
    assert worker.wait(timeout=60) == 1, worker.describe()
    output = worker.output()
    assert "could not start child process" in output and "Too many open files" in output, output
    assert "event=worker_failed" in output
    assert status_of(job) == JobStatus.QUEUED and job.attempts == 0


def test_concurrency__over_the_bound_is_refused():
    with pytest.raises(CommandError, match="--concurrency is at most 256, not 257"):
        call_command("runjobs", "--burst", "--concurrency", "257")


# -- jobs that misuse their child ------------------------------------------------------------------


def test_child_death__seen_while_a_process_it_forked_keeps_its_socket_open(start_worker):
    job = jobs.fork_daemon_then_die.enqueue(300.0)
    worker = start_worker("--concurrency", "1")
    wait_until(lambda: status_of(job) != JobStatus.RUNNING and started(job), timeout=20,
               message=lambda: f"the job to end lost: {worker.describe()}")
    assert job.history[0]["outcome"] == "lost"
    assert job.history[0]["error"]["class"] == "django_jobs.exceptions.WorkerLost"
    assert "exited with code 3" in job.history[0]["error"]["message"]

    after = jobs.add.enqueue(2, 3)  # the new child works
    wait_until(lambda: status_of(after) == JobStatus.SUCCEEDED, timeout=20, message="the next job")
    assert after.result == 5


def test_fork_without_exit__each_job_keeps_its_own_result(start_worker):
    forking = jobs.fork_and_return.enqueue("mine")
    others = [jobs.add.enqueue(i, 100) for i in range(20)]
    worker = start_worker("--burst", "--concurrency", "1")
    assert worker.wait(timeout=60) == 0, worker.describe()
    assert status_of(forking) == JobStatus.SUCCEEDED and forking.result == "mine"
    for i, job in enumerate(others):
        assert status_of(job) == JobStatus.SUCCEEDED and job.result == i + 100, (i, job.history)


def test_forged_reply__from_another_process_is_refused(start_worker):
    forging = jobs.forge_reply.enqueue("real")
    after = jobs.add.enqueue(1, 1)
    worker = start_worker("--burst", "--concurrency", "1")
    assert worker.wait(timeout=60) == 0, worker.describe()
    assert status_of(forging) == JobStatus.SUCCEEDED and forging.result == "real", worker.describe()
    assert status_of(after) == JobStatus.SUCCEEDED and after.result == 2
    assert "event=reply_refused" in worker.output()


@pytest.mark.parametrize("offender", [jobs.leave_atomic_open, jobs.leave_autocommit_off])
def test_transaction_left_open__rolled_back_and_the_next_job_in_the_child_succeeds(start_worker, offender):
    first = offender.enqueue("lost write")
    later = [jobs.record.enqueue(f"later {i}") for i in range(3)]
    worker = start_worker("--burst", "--concurrency", "1")
    assert worker.wait(timeout=60) == 0, worker.describe()
    for job in later:
        assert status_of(job) == JobStatus.SUCCEEDED, job.history
    assert SideEffect.objects.filter(label__startswith="later").count() == 3
    # The job returned: its outcome stands, but its uncommitted write was rolled back, and said so.
    assert status_of(first) == JobStatus.SUCCEEDED
    assert not SideEffect.objects.filter(label="lost write").exists()
    assert "event=transaction_left_open" in worker.output()


def test_replies_sent_before_a_child_died__still_count():
    # A child answers two jobs of its batch and dies on the third: the two answers were sent
    # before the socket closed, so they are outcomes, not lost attempts to run again.
    import socket as socket_

    from django_jobs.worker.pool import Slot

    slot = Slot(0, "w")
    parent, child = socket_.socketpair()
    slot.conn = parent
    child.sendall(b'{"id": 1, "outcome": "succeeded"}\n{"id": 2, "outcome": "succeeded"}\n')
    child.close()
    replies, closed = slot.receive(block=True)
    assert [r["id"] for r in replies] == [1, 2] and closed
    parent.close()
