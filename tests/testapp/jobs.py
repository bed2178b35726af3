"""Jobs the test suite enqueues. Each records a SideEffect row when its body runs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta

from asgiref.sync import sync_to_async

from django_jobs import Backoff, Retry, StopJob, current_job, job

from .models import SideEffect


def _record(label: str = "") -> None:
    ctx = current_job()
    SideEffect.objects.create(job_id=ctx.id if ctx else 0, label=label, attempt=ctx.attempt if ctx else 0)


@job
def noop() -> None:
    """Do nothing (for throughput)."""


@job
def record(label: str = "") -> str:
    _record(label)
    return label


@job(name="tests.add")
def add(a: int, b: int) -> int:
    _record("add")
    return a + b


@job(max_attempts=3, backoff=Backoff(base=0.05, factor=1, max_delay=0.05, jitter=0))
def fail_always(label: str = "") -> None:
    _record(label)
    raise ValueError(f"boom {label}")


@job(max_attempts=3, backoff=Backoff(base=0.05, factor=1, max_delay=0.05, jitter=0))
def fail_then_succeed(fail_times: int) -> str:
    _record()
    if current_job().attempt <= fail_times:
        raise ConnectionError(f"flaky attempt {current_job().attempt}")
    return "ok"


@job(max_attempts=3, backoff=Backoff(base=1, factor=1, max_delay=1, jitter=0))
def flaky_once(label: str = "") -> str:
    """Fail the first attempt, succeed the next, one second later."""
    _record(label)
    if current_job().attempt == 1:
        raise ConnectionError("flaky first attempt")
    return "ok"


@job(max_attempts=5, dont_retry=(KeyError,))
def fail_fatally() -> None:
    _record()
    raise KeyError("no such thing")


@job(max_attempts=2)
def snooze_once(seconds: float) -> str:
    _record()
    if current_job().attempt == 1:
        raise Retry(delay=timedelta(seconds=seconds))
    return "woke"


@job
def stop_self(reason: str) -> None:
    _record()
    raise StopJob(reason)


@job(timeout=0.5, max_attempts=2, backoff=Backoff(base=0.05, factor=1, max_delay=0.05, jitter=0))
def sleep_forever() -> None:
    _record()
    time.sleep(3600)


@job
def sleep_for(seconds: float) -> str:
    _record()
    time.sleep(seconds)
    return "slept"


@job
def returns_unjsonable() -> object:
    return {1, 2}


@job(max_attempts=3)
def returns_tuple(label: str = "") -> object:
    """Record its work, then return tuples (stored as lists)."""
    _record(label)
    return ("done", {"pair": (1, 2)})


@job(max_attempts=3)
def returns_datetime(label: str = "") -> object:
    """Record its work, then return a value JSON can't hold."""
    _record(label)
    return datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


@job
def crash_process() -> None:
    _record()
    os._exit(3)


@job
def cooperative_loop(limit: float = 30.0) -> str:
    """Work in small steps until asked to stop (or ``limit`` seconds pass)."""
    _record()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if current_job().stop_requested:
            return "noticed the stop request"
        time.sleep(0.05)
    return "ran out of time"


@job(max_attempts=1)
def fail_with_undecodable_file_name() -> None:
    """Fail as code listing a directory with a non-UTF-8 file name would."""
    _record()
    name = os.fsdecode(b"report-\xff.csv")  # a lone surrogate, '\udcff'
    current_job().set_progress(50, f"reading {name}")
    raise ValueError(f"cannot parse {name}")


# async def jobs (tests/process/worker/test_async.py): the same outcomes as the sync ones above.


@job(timeout=0.5, max_attempts=2, backoff=Backoff(base=0.05, factor=1, max_delay=0.05, jitter=0))
async def async_sleep_forever() -> None:
    await sync_to_async(_record)("async")
    await asyncio.sleep(3600)


@job(max_attempts=2)
async def async_snooze_once(seconds: float) -> str:
    ctx = current_job()
    await sync_to_async(_record)("async")
    if ctx.attempt == 1:
        raise Retry(delay=timedelta(seconds=seconds))
    return f"woke in attempt {ctx.attempt} of job {ctx.id}"


@job
async def async_stop_self(reason: str) -> None:
    await sync_to_async(_record)("async")
    raise StopJob(reason)


@job
async def async_cooperative_loop(limit: float = 30.0) -> str:
    """Report progress and wait until asked to stop, through the context's async methods."""
    await sync_to_async(_record)("async")
    await current_job().aset_progress(10, "waiting")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await current_job().astop_requested():
            return "noticed the stop request"
        await asyncio.sleep(0.05)
    return "ran out of time"


@job(max_attempts=1)
async def async_orm_without_sync_to_async() -> int:
    """Call the ORM straight from the event loop, which Django refuses."""
    return SideEffect.objects.count()


# Jobs that misuse their child process (tests/process/worker/test_child.py).


@job
def fork_daemon_then_die(seconds: float) -> None:
    """Fork a process that outlives this one (keeping the child's descriptors open), then die."""
    _record()
    if os.fork() == 0:
        time.sleep(seconds)
        os._exit(0)
    os._exit(3)


@job
def fork_and_return(label: str) -> str:
    """Fork and let both copies return (a job that forgot the forked copy's os._exit)."""
    return label if os.fork() else f"{label} (the forked copy)"


@job
def forge_reply(label: str) -> str:
    """Have a forked copy write a made-up reply for this very job on the child's socket."""
    import json
    import socket

    ctx = current_job()
    pid = os.fork()
    if pid == 0:
        for fd in map(int, os.listdir("/proc/self/fd")):
            try:
                sock = socket.socket(fileno=os.dup(fd))
            except OSError:
                continue
            if sock.family == socket.AF_UNIX:
                forged = {"outcome": "succeeded", "result": "forged", "id": ctx.id, "a": ctx.attempt,
                          "pid": os.getpid(), "t": time.monotonic(), "d": 0.0}
                sock.sendall(json.dumps(forged).encode() + b"\n")
            sock.detach()
        os._exit(0)
    os.waitpid(pid, 0)
    return label


@job
def leave_atomic_open(label: str) -> str:
    """Write inside an atomic block and return without leaving it."""
    from django.db import transaction

    transaction.atomic().__enter__()
    _record(label)
    return label


@job
def leave_autocommit_off(label: str) -> str:
    """Turn autocommit off, write, and return without committing or turning it back on."""
    from django.db import transaction

    transaction.set_autocommit(False)
    _record(label)
    return label


# -- flow control (tests/process/test_flow.py, tests/integration/db/test_gates.py) -----------------


def _span(key: str, seconds: float) -> None:
    from django.utils import timezone

    from .models import Span

    ctx = current_job()
    span = Span.objects.create(job_id=ctx.id if ctx else 0, key=key, started_at=timezone.now())
    if seconds:
        time.sleep(seconds)  # the job's "work": long enough for others to overlap it if they could
    span.ended_at = timezone.now()
    span.save(update_fields=["ended_at"])


@job(concurrency=2)
def limited_pair(seconds: float = 0.05) -> None:
    _span("pair", seconds)


@job(concurrency=1, concurrency_key="account:{account_id}")
def sync_account(account_id: str, seconds: float = 0.05) -> None:
    _span(f"account:{account_id}", seconds)


@job(rate="5/s")
def rated(n: int = 0) -> None:
    _span("rated", 0)


@job(sequence_key="customer:{customer_id}", max_attempts=1)
def apply_webhook(customer_id: str, event: int, fail: bool = False, seconds: float = 0.01) -> None:
    # ``fail``: fails until a test "fixes" it (a SideEffect labelled "fixed"), so a retry succeeds.
    if fail and not SideEffect.objects.filter(label="fixed").exists():
        raise ValueError(f"event {event} can't be applied")
    _span(f"customer:{customer_id}", seconds)


@job(queue="partner-api")
def call_partner(seconds: float = 0.05) -> None:
    _span("partner", seconds)


@job(sequence_key="feed:{feed}", sequence_on_dead="continue")
def apply_feed_item(feed: str, item: int) -> None:
    _span(f"feed:{feed}", 0)


@job
def checkpointed_steps(steps: int = 60, seconds: float = 0.05) -> str:
    """Take ``steps`` steps, going on from the last checkpoint; when asked to stop (or when the
    worker shuts down), write a checkpoint (a SideEffect "checkpoint:N") and return."""
    ctx = current_job()
    assert ctx is not None
    done = [int(label.split(":")[1]) for label in
            SideEffect.objects.filter(job_id=ctx.id, label__startswith="checkpoint:").values_list("label", flat=True)]
    start = max(done, default=0)
    _record(f"start:{start}")
    for step in range(start, steps):
        if ctx.stop_requested:
            _record(f"checkpoint:{step}")
            return f"checkpointed at {step}"
        time.sleep(seconds)
    return f"done from {start}"


@job(timeout=1.0, max_attempts=1)
def orphan_a_process(pid_file: str, seconds: float = 4.0) -> None:
    """Start a process that outlives this attempt (killed at its timeout), writing its pid first."""
    import subprocess

    _record()
    subprocess.Popen(["sh", "-c", f'echo $$ > "{pid_file}.tmp" && mv "{pid_file}.tmp" "{pid_file}" && exec sleep {seconds}'])
    time.sleep(60)


@job(max_attempts=1)
def record_once(label: str = "") -> str:
    """A short job that must run at most once: each run records a SideEffect."""
    _record(label)
    return label


def _worker_pid() -> int:
    """The worker's main process: this child's parent, or its grandparent when the worker's fork
    server (a fork of the worker, with the same command line) started the child."""

    def parent_of(pid: int) -> int:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])

    def cmdline(pid: int) -> bytes:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()

    parent = os.getppid()
    grandparent = parent_of(parent)
    return grandparent if cmdline(grandparent) == cmdline(parent) else parent


@job(max_attempts=10, backoff=Backoff(base=0.05, factor=1, max_delay=0.05, jitter=0))
def kill_own_worker() -> None:
    """A poison pill: kills the worker's main process each time it runs."""
    _record()
    os.kill(_worker_pid(), signal.SIGKILL)
    time.sleep(30)  # the child dies with its parent (PR_SET_PDEATHSIG) long before this ends


@job(max_attempts=10, backoff=Backoff(base=0.05, factor=1, max_delay=0.05, jitter=0))
def kill_own_child() -> None:
    """A poison pill of the other kind: kills the child process running it each time."""
    _record()
    os.kill(os.getpid(), signal.SIGKILL)


# -- workflows (using(after=[...])) ----------------------------------------------------------------


@job
def step(label: str, value: int = 0) -> int:
    """A workflow's step: records that it ran and returns ``value``."""
    _record(label)
    return value


@job
def total_upstream(label: str) -> int:
    """Records the sum of its upstream jobs' results, and returns it."""
    context = current_job()
    assert context is not None
    total = sum(int(v) for v in context.upstream_results().values())
    _record(f"{label}={total}")
    return total


@job(max_attempts=1)
def fail_unless_fixed(label: str) -> int:
    """Fails for good until a test "fixes" it (a SideEffect labelled "fixed"), then succeeds."""
    if not SideEffect.objects.filter(label="fixed").exists():
        raise ValueError(f"{label} isn't fixed yet")
    _record(label)
    return 1


@job
def make_span(label: str) -> str:
    """Make a span of its own (tests/process/test_tracing.py: it nests under the attempt's)."""
    # Imported here: only the tracing tests enqueue it, and test_tracing runs the app without it.
    from opentelemetry import trace

    with trace.get_tracer("tests.testapp").start_as_current_span(f"inside {label}"):
        _record(label)
    return label
