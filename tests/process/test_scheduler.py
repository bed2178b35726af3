"""The scheduler across processes: racing scheduler services and ``runjobs`` workers enqueue each tick exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from django_jobs.models import Job, Pause, Schedule
from tests.support import REPO
from tests.support.procs import database_url, runjobs_env, wait_until
from tests.support.schedules import T0, UTC, make, ticks_of


@pytest.fixture(autouse=True)
def _only_our_schedules(request: pytest.FixtureRequest) -> None:
    # Migrations of other apps may seed schedules (the example shop's nightly sync); these tests
    # count every schedule and every job a firing makes.
    marker = request.node.get_closest_marker("django_db")
    if marker is not None:
        request.getfixturevalue("transactional_db" if marker.kwargs.get("transaction") else "db")
        Schedule.objects.all().delete()


pytestmark = pytest.mark.usefixtures("only_our_schedules")


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_race__four_scheduler_processes_enqueue_each_tick_exactly_once(tmp_path: Path) -> None:
    # Forty ticks of an every-minute schedule in about eight seconds: each racer's clock runs 300
    # times fast and is off by a random ±3 s on every call, like workers on different machines.
    start = datetime(2031, 1, 1, tzinfo=UTC)
    end = start + timedelta(minutes=40)
    schedule = make("* * * * *", catch_up="all", now=start - timedelta(seconds=1))
    assert schedule.next_run_at == start
    go = tmp_path / "go"
    procs, logs = [], []
    for i in range(4):
        log_path = tmp_path / f"racer-{i}.log"
        logs.append(log_path)
        with open(log_path, "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "support" / "scheduler_race.py"), start.isoformat(), end.isoformat(),
                 str(go), "300", f"racer-{i}", "3"],
                cwd=REPO, env=runjobs_env(database_url()), stdout=log, stderr=subprocess.STDOUT,
            ))
    try:
        # Start the clock once every racer has imported Django (slow on a loaded machine).
        wait_until(lambda: len(list(tmp_path.glob("go.racer-*.ready"))) == 4 or any(p.poll() is not None for p in procs),
                   timeout=120, message="four racers ready")
        (tmp_path / "go.tmp").write_text(str(time.time() + 0.2))
        (tmp_path / "go.tmp").rename(go)
        codes = [p.wait(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    output = "\n".join(p.read_text() for p in logs)
    assert codes == [0, 0, 0, 0], output

    expected = [start + timedelta(minutes=m) for m in range(41)]
    assert ticks_of(schedule) == expected, output
    winners = {line.split("worker=")[1].split()[0] for line in output.splitlines() if "event=schedule_fired" in line}
    assert len(winners) >= 2, f"one racer fired every tick; nothing raced:\n{output}"


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_runjobs__four_workers_fire_each_due_schedule_once(worker_process: Callable[..., Any]) -> None:
    # Yearly schedules forced due: after firing, none is due again until next January, so the
    # count can't grow however long the workers keep running.
    schedules = [make("0 0 1 1 *", name=f"yearly-{i}", now=T0) for i in range(5)]
    workers = [worker_process("--queue", "nothing", "--concurrency", "1") for _ in range(4)]
    for w in workers:
        w.wait_for_output("event=worker_started")
    Schedule.objects.update(next_run_at=datetime(2020, 1, 1, tzinfo=UTC))

    wait_until(
        lambda: Job.objects.filter(schedule__isnull=False).values("schedule").distinct().count() == 5,
        timeout=20,
        message=lambda: "a job for each schedule; " + "\n".join(w.describe() for w in workers),
    )
    wait_until(lambda: not Schedule.objects.filter(next_run_at__lte=timezone.now()).exists(), timeout=10,
               message="every schedule moved to next January")

    for schedule in schedules:
        assert Job.objects.filter(schedule=schedule).count() == 1
    for w in workers:
        assert w.stop() == 0, w.describe()


@pytest.mark.subprocess
@pytest.mark.django_db(transaction=True)
def test_runjobs__a_schedule_paused_past_its_grace_is_flagged_and_mailed_once(
    worker_process: Callable[..., Any],
) -> None:
    # Every minute for the last hour, with a minute's grace, and its queue paused: its ticks'
    # jobs wait, so none succeeds. Two workers check it; one mail goes out.
    start = timezone.now() - timedelta(hours=1)
    schedule = make("* * * * *", name="every-minute", now=start, grace=60)
    Pause.objects.pause_queue("default", "maintenance")
    # An unregistered schedule: each worker logs it once its first maintenance pass has run the
    # missed-schedule check (which comes before the scheduler), so the test knows both checked.
    Schedule(name="marker", job_name="tests.nope", cron="0 0 1 1 *", timezone="UTC").save(now=start)
    env = {"DJANGO_JOBS_TEST_SETTINGS": json.dumps({"POLL_INTERVAL": 0.2, "MAIL_ADMINS_ON_MISSED": True})}

    workers = [worker_process("--concurrency", "1", env=env) for _ in range(2)]
    for w in workers:
        w.wait_for_output("event=schedule_unregistered", timeout=60)
    wait_until(lambda: "event=missed_mailed schedule=every-minute" in "".join(w.output() for w in workers),
               timeout=20, message=lambda: "\n".join(w.describe() for w in workers))

    claimed = [line for w in workers for line in w.output().splitlines()
               if "event=missed_alert schedule=every-minute" in line]
    assert len(claimed) == 1, "\n".join(w.describe() for w in workers)
    assert Schedule.objects.get(pk=schedule.pk).missed_mailed_at is not None
    assert not Job.objects.filter(schedule=schedule, status="succeeded").exists()
    for w in workers:
        assert w.stop() == 0, w.describe()
