"""Retake the admin screenshots of the docs: ``.venv/bin/python docs/screenshots.py``.

Builds a demo database of the example project (``DATABASE_URL``, default a scratch PostgreSQL
database ``django_jobs_screenshots`` on 127.0.0.1:5432, created when missing, its job tables
emptied), fills it with a shop's afternoon (``seed()``: three queues, two workers, running,
retrying, dead and paused work), serves it with ``runserver``, and photographs the pages of
the operator's guide with headless Chromium (Debian's ``chromium``, driven by Playwright):
the overview, the job list, a dead job's page, a confirmation page, the dead
letters, and the overview's charts in the light and dark themes (their buckets made up by
``seed_charts()``: a day and a week of a shop's traffic). ``pngquant`` shrinks them
into ``docs/img/``. Needs ``apt-get install chromium pngquant``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
IMG = REPO / "docs" / "img"
from tests.support.procs import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (after the sys.path line)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/django_jobs_screenshots"
WIDTH, HEIGHT = 1360, 860
SERVER_TIMEOUT = 60.0

EMAIL, SYNC = "shop.send_order_email", "shop.sync_stripe_orders"
SMTP_ERROR = {
    "class": "smtplib.SMTPServerDisconnected",
    "message": "Connection unexpectedly closed",
    "traceback": (
        "Traceback (most recent call last):\n"
        '  File "/srv/shop/example_project/shop/emails.py", line 41, in send_confirmation\n'
        "    connection.send_messages([message])\n"
        '  File "/usr/lib/python3.11/smtplib.py", line 405, in getreply\n'
        '    raise SMTPServerDisconnected("Connection unexpectedly closed")\n'
        "smtplib.SMTPServerDisconnected: Connection unexpectedly closed"
    ),
}
STRIPE_ERROR = {
    "class": "stripe._error.AuthenticationError",
    "message": "Invalid API Key provided: sk_live_****************abcd",
    "traceback": (
        "Traceback (most recent call last):\n"
        '  File "/srv/shop/example_project/shop/sync.py", line 88, in sync_invoices\n'
        "    page = client.invoices.list(params)\n"
        "stripe._error.AuthenticationError: Invalid API Key provided: sk_live_****************abcd"
    ),
}


def _failed_attempts(
    count: int, last_end: datetime, worker: str, error: dict[str, str], spacing: timedelta
) -> list[dict[str, Any]]:
    history = []
    for n in range(1, count + 1):
        end = last_end - spacing * (count - n)
        history.append(
            {
                "attempt": n,
                "worker": worker,
                "started_at": (end - timedelta(seconds=1.2)).isoformat(),
                "finished_at": end.isoformat(),
                "duration": round(0.9 + n * 0.13, 3),
                "outcome": "failed",
                "error": error,
            }
        )
    return history


def seed(now: datetime) -> dict[str, Any]:
    """Fill the job tables with a shop's afternoon; return the jobs worth a picture."""
    from django_jobs.models import Job, JobStatus, Pause, Worker

    def add(name: str, queue: str, status: str, at: datetime, **fields: Any) -> Job:
        fields.setdefault("max_attempts", 5 if name == EMAIL else 6)
        fields.setdefault("attempts", 0 if status == JobStatus.QUEUED else 1)
        fields.setdefault("kwargs", {"order_id": 1000} if name == EMAIL else {})
        fields.setdefault("run_at", at)
        return Job.objects.create(name=name, queue=queue, status=status, created_at=at, **fields)

    for i in range(38):
        at = now - timedelta(minutes=58 - i * 1.5)
        add(
            EMAIL,
            "emails",
            JobStatus.SUCCEEDED,
            at,
            kwargs={"order_id": 1000 + i},
            started_at=at,
            finished_at=at + timedelta(seconds=1),
            result={"sent_to": f"customer{i}@example.com"},
            history=[
                {
                    "attempt": 1,
                    "worker": "web-1:4242",
                    "outcome": "succeeded",
                    "duration": 0.84,
                    "started_at": at.isoformat(),
                    "finished_at": (at + timedelta(seconds=1)).isoformat(),
                }
            ],
        )
    dead = []
    for i, order_id in enumerate((1042, 1057, 1061, 1063, 1070)):
        end = now - timedelta(minutes=11 + 17 * i)
        dead.append(
            add(
                EMAIL,
                "emails",
                JobStatus.DEAD,
                end - timedelta(hours=2),
                kwargs={"order_id": order_id},
                attempts=5,
                started_at=end - timedelta(seconds=1),
                finished_at=end,
                last_error="SMTPServerDisconnected: Connection unexpectedly closed",
                history=_failed_attempts(5, end, "web-1:4242", SMTP_ERROR, timedelta(minutes=27)),
            )
        )
    sync_end = now - timedelta(hours=6, minutes=55)
    add(
        SYNC,
        "default",
        JobStatus.DEAD,
        sync_end,
        attempts=1,
        started_at=sync_end,
        finished_at=sync_end,
        last_error="AuthenticationError: Invalid API Key provided: sk_live_****************abcd",
        history=_failed_attempts(1, sync_end, "worker-2:977", STRIPE_ERROR, timedelta(0)),
    )
    for i in range(14):
        add(
            EMAIL,
            "emails",
            JobStatus.QUEUED,
            now - timedelta(minutes=6, seconds=40 - i * 20),
            kwargs={"order_id": 1110 + i},
        )
    add(
        EMAIL,
        "emails",
        JobStatus.RETRYING,
        now - timedelta(minutes=3),
        kwargs={"order_id": 1077},
        attempts=2,
        run_at=now + timedelta(minutes=4, seconds=30),
        last_error="SMTPServerDisconnected: Connection unexpectedly closed",
        history=_failed_attempts(
            2, now - timedelta(minutes=1), "worker-2:977", SMTP_ERROR, timedelta(seconds=30)
        ),
    )
    for i in range(3):
        add(
            SYNC,
            "reports",
            JobStatus.QUEUED,
            now - timedelta(hours=1, minutes=i),
            kwargs={"now": f"2026-10-{28 + i}T00:05:00+00:00"},
        )
    running = [
        add(
            SYNC,
            "default",
            JobStatus.RUNNING,
            now - timedelta(minutes=3, seconds=10),
            started_at=now - timedelta(minutes=3, seconds=8),
            worker_id="web-1:4242",
            progress={"percent": 40, "message": "fetched 400 of about 1,000 invoices"},
        ),
        add(
            EMAIL,
            "emails",
            JobStatus.RUNNING,
            now - timedelta(seconds=4),
            kwargs={"order_id": 1108},
            started_at=now - timedelta(seconds=2),
            worker_id="web-1:4242",
        ),
        add(
            EMAIL,
            "emails",
            JobStatus.RUNNING,
            now - timedelta(seconds=3),
            kwargs={"order_id": 1109},
            started_at=now - timedelta(seconds=1),
            worker_id="worker-2:977",
        ),
    ]
    Worker.objects.create(
        worker_id="web-1:4242",
        hostname="web-1",
        pid=4242,
        concurrency=4,
        started_at=now - timedelta(hours=26, minutes=12),
        last_heartbeat=now - timedelta(seconds=3),
        running=[running[0].pk, running[1].pk],
    )
    Worker.objects.create(
        worker_id="worker-2:977",
        hostname="worker-2",
        pid=977,
        concurrency=2,
        queues=["emails"],
        started_at=now - timedelta(hours=3, minutes=4),
        last_heartbeat=now - timedelta(seconds=1),
        running=[running[2].pk],
    )
    Pause.objects.pause_queue("reports", reason="month-end import running")
    return {"dead": dead[0]}


def seed_charts(now: datetime) -> None:
    """Fill the charts' buckets with a week of made-up traffic: a daily rhythm, a deploy 3 hours
    ago that stalls the emails queue for 20 minutes (its backlog and lag climb, then drain), and
    the Stripe sync dying for 40 minutes 7 hours ago."""
    import math
    import random

    from django_jobs.db.series import HOUR, MINUTE, floor_minute
    from django_jobs.models import Sample

    dice = random.Random(18)
    last = floor_minute(now) - timedelta(minutes=1)
    minutes_kept = 48 * 60
    hours: dict[tuple[datetime, str, str], dict[str, float]] = {}
    rows: list[dict[str, Any]] = []
    for ago in range(7 * 24 * 60, 0, -1):
        bucket = last - timedelta(minutes=ago - 1)
        hour_of_day = bucket.hour + bucket.minute / 60
        busy = 0.55 + 0.45 * math.sin((hour_of_day - 9) / 24 * 2 * math.pi)
        stalled = 180 >= ago > 160
        backlog = 0 if ago > 180 or ago < 130 else (180 - ago) * 9 if stalled else max(0, 180 - (160 - ago) * 6)
        sent = 0 if stalled else round(busy * 24 + dice.random() * 6 + (30 if 160 >= ago > 140 else 0))
        synced = round(busy * 6 + dice.random() * 2)
        sync_dead = synced if 420 >= ago > 380 else 0
        per_name = {
            ("emails", EMAIL): (sent, 0, 1 if dice.random() < 0.02 else 0, 0.6 + busy * 0.3, 1.4 + busy),
            ("default", SYNC): (synced - sync_dead, 0, sync_dead, 4 + busy * 3, 9 + busy * 6),
        }
        depth = {"emails": backlog + round(busy * 3), "default": round(dice.random() * 2), "reports": 3}
        lag = {"emails": 1 + backlog * 1.3, "default": dice.random() * 2, "reports": 60 * 60 + ago * 0}
        queues = {}
        for (queue, name), (ok, stopped, dead, p50, p95) in per_name.items():
            queues[queue] = (ok, stopped, dead, p50, p95)
            rows.append(dict(queue=queue, name=name, succeeded=ok, stopped=stopped, dead=dead,
                             p50=p50, p95=p95))
        for queue in depth:
            ok, stopped, dead, p50, p95 = queues.get(queue, (0, 0, 0, None, None))
            rows.append(dict(queue=queue, name="", succeeded=ok, stopped=stopped, dead=dead, p50=p50,
                             p95=p95, depth=depth[queue], lag=lag[queue]))
        rows.append(dict(queue="", name="", succeeded=sent + synced - sync_dead, stopped=0,
                         dead=sync_dead, depth=sum(depth.values()), lag=max(lag.values())))
        for row in rows:
            key = (bucket.replace(minute=0), row["queue"], row["name"])
            total = hours.setdefault(key, {"succeeded": 0, "stopped": 0, "dead": 0, "depth": 0, "lag": 0})
            for field in ("succeeded", "stopped", "dead"):
                total[field] += row[field]
            for field in ("depth", "lag"):
                if row.get(field) is not None:
                    total[field] = max(total[field], row[field])
            for field in ("p50", "p95"):
                if row.get(field) is not None:
                    total[field] = row[field]
        if ago <= minutes_kept:
            Sample.objects.bulk_create([Sample(span=MINUTE, bucket=bucket, **row) for row in rows])
        rows = []
    Sample.objects.bulk_create(
        Sample(span=HOUR, bucket=at, queue=queue, name=name, **values)
        for (at, queue, name), values in hours.items()
        if at + timedelta(hours=1) <= last
    )


def _prepare_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"runserver exited ({server.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)  # poll interval while waiting on the condition above
    sys.exit(f"runserver did not answer {url} within {SERVER_TIMEOUT:g}s:\n{log.read_text()}")


def _shrink(source: Path, name: str) -> Path:
    target = IMG / f"{name}.png"
    subprocess.run(
        [
            "pngquant",
            "--force",
            "--quality",
            "50-80",
            "--strip",
            "--output",
            str(target),
            str(source),
        ],
        check=True,
    )
    return target


def photograph(
    base_url: str, username: str, password: str, dead_job_id: int, workdir: Path
) -> list[Path]:
    """Log in and take the pictures; return the files written into docs/img/."""
    from playwright.sync_api import sync_playwright

    # (file, page, element to wait for, element to click there first or None, clip height or None)
    dead_emails = "/admin/django_jobs/job/?status__exact=dead&queue=emails"
    shots = [
        ("admin-overview", "/admin/django_jobs/queueoverview/", "#workers", None, None),
        ("admin-jobs", dead_emails, "#result_list", None, HEIGHT),
        ("admin-job", f"/admin/django_jobs/job/{dead_job_id}/change/", "#content-main", None, None),
        (
            "admin-retry-confirm",
            "/admin/django_jobs/job/?status__exact=dead",
            "form input[type=submit]",
            "a.dj-retry",
            480,
        ),
        ("admin-dead-letters", "/admin/django_jobs/deadletter/", "#result_list", None, None),
    ]
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": WIDTH, "height": HEIGHT}, base_url=base_url
        )
        # The admin's navigation sidebar takes a third of the width; the pictures are of the pages.
        context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
        page = context.new_page()
        page.goto("/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        for name, path, ready, click, clip_height in shots:
            page.goto(path)
            if click:
                page.click(click)
            page.wait_for_selector(ready)
            raw = workdir / f"{name}.png"
            if clip_height:
                page.screenshot(
                    path=str(raw), clip={"x": 0, "y": 0, "width": WIDTH, "height": clip_height}
                )
            else:
                page.screenshot(path=str(raw), full_page=True)
            written.append(_shrink(raw, name))
        # The overview's charts, in the light theme and in the dark one.
        for name, scheme in (("admin-charts", "light"), ("admin-charts-dark", "dark")):
            page.emulate_media(color_scheme=scheme)
            page.goto("/admin/django_jobs/queueoverview/?range=day")
            raw = workdir / f"{name}.png"
            page.locator("#activity").screenshot(path=str(raw))
            written.append(_shrink(raw, name))
        browser.close()
    return written


def main() -> int:
    for tool, package in (("pngquant", "pngquant"), (CHROMIUM, "chromium")):
        if not shutil.which(tool):
            sys.exit(f"docs/screenshots.py needs {tool}: apt-get install {package}")
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DEBUG": "true",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    if url.startswith("postgres"):
        _prepare_database(url)

    import django
    from django.core.management import call_command

    django.setup()
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from django_jobs.models import Job, Pause, Sample, Worker

    call_command("migrate", verbosity=0)
    Sample.objects.all().delete()
    Job.objects.all().delete()
    Worker.objects.all().delete()
    Pause.objects.all().delete()
    jobs = seed(timezone.now())
    seed_charts(timezone.now())
    password = secrets.token_urlsafe(12)
    User = get_user_model()
    User.objects.filter(username="operator").delete()
    User.objects.create_superuser("operator", "operator@example.com", password)

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "runserver.log"
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            _wait_for(f"http://127.0.0.1:{port}/admin/login/", server, log)
            written = photograph(
                f"http://127.0.0.1:{port}", "operator", password, jobs["dead"].pk, Path(tmp)
            )
        finally:
            server.terminate()
            server.wait(timeout=10)
    for path in written:
        print(f"{path.relative_to(REPO)}: {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
