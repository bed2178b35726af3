#!/usr/bin/env python3
"""Run the django-jobs demo: ``python3 example_project/demo.py [--port 8000] [--check]``.

Needs only Python 3.11+. It creates or reuses ``.venv`` (shared with ``tests/run.py``),
migrates the database (``DATABASE_URL``, default SQLite in ``var/``), makes sure a
superuser ``admin`` exists (its random password is kept in ``var/demo-admin-password``
and printed on every run), then runs a worker (``manage.py runjobs``) and the web server
(``manage.py runserver 127.0.0.1:PORT``) until Ctrl-C or SIGTERM, and stops both.

The shop example needs no Stripe account and sends no real email: the demo serves a fake
Stripe API from this process (``example_project/shop/fake_stripe.py``, seeded with a few
invoices) and points the worker at it (``STRIPE_API_KEY``, ``STRIPE_API_BASE``), and the
confirmation emails are written as files into ``var/mail/`` (unless ``EMAIL_URL`` is set).
With ``STRIPE_API_KEY`` already in the environment the worker uses that key instead.

``--check`` does all of that, waits until the admin login page answers over HTTP and
the worker is still running, runs the nightly Stripe sync at once (its schedule's "run
now") and waits until it has synced the fake's invoices into orders and every one of
them has had its confirmation email, then stops both and exits 0 (non-zero on any
failure): proof for tests and CI that the quickstart works, jobs included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from example_project import _bootstrap  # noqa: E402  (stdlib only, on purpose)
from example_project._bootstrap import REPO, say  # noqa: E402
from example_project.shop.fake_stripe import FakeStripe  # noqa: E402  (stdlib only too)

VAR_DIR = REPO / "var"
PASSWORD_FILE = VAR_DIR / "demo-admin-password"
ADMIN_USERNAME = "admin"

READY_TIMEOUT = 90  # seconds for runserver to answer; first runs on slow CI are slow
WORKER_STOP_TIMEOUT = 40  # runjobs gives running jobs 25 s (--grace) to finish on SIGTERM
SERVER_STOP_TIMEOUT = 10
CHAIN_TIMEOUT = 90  # seconds for --check's Stripe sync and its emails

MAIL_DIR = VAR_DIR / "mail"
FAKE_STRIPE_INVOICES = 5

# Run with the venv's python through `manage.py shell -c`. Never resets an existing
# admin's password: it only reports whether the stored one still works.
_ENSURE_ADMIN = """
import os
from django.contrib.auth import get_user_model
User = get_user_model()
name, password = os.environ["DEMO_ADMIN_USERNAME"], os.environ["DEMO_ADMIN_PASSWORD"]
user = User.objects.filter(**{User.USERNAME_FIELD: name}).first()
if user is None:
    User.objects.create_superuser(name, "admin@example.com", password)
    print("created")
elif user.check_password(password):
    print("exists")
else:
    print("password-differs")
"""

# Run like _ENSURE_ADMIN in --check mode: the Stripe sync's "run now", then every order of
# the fake's invoices must get its email, within DEMO_CHECK_TIMEOUT seconds.
_CHECK_CHAIN = """
import os, sys, time
from django_jobs.models import Schedule
from example_project.shop.jobs import sync_stripe_orders
from example_project.shop.models import Order
deadline = time.monotonic() + float(os.environ["DEMO_CHECK_TIMEOUT"])
def wait_for(what, done):
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)
schedule = Schedule.objects.filter(job_name=sync_stripe_orders.name).first()
job = schedule.run_now() if schedule else sync_stripe_orders.enqueue()
def finished():
    job.refresh_from_db()
    return job.is_finished
wait_for(f"the Stripe sync (job {job.pk})", finished)
if job.status != "succeeded":
    sys.exit(f"the Stripe sync (job {job.pk}) ended {job.status}: {job.last_error}")
expected = os.environ["DEMO_INVOICE_IDS"].split()
orders = Order.objects.filter(stripe_invoice_id__in=expected)
def all_emailed():
    return orders.count() == len(expected) and not orders.filter(emailed_at=None).exists()
wait_for("the confirmation emails", all_emailed)
counts = " ".join(f"{k}={job.result[k]}" for k in ("fetched", "created", "updated", "unchanged"))
print(f"Stripe sync job {job.pk}: {counts}; {orders.count()} orders, every one emailed")
"""


class DemoError(RuntimeError):
    """The demo could not be set up or did not come up."""


def admin_password() -> str:
    """Return the demo admin's password, creating and storing a random one the first time."""
    VAR_DIR.mkdir(exist_ok=True)
    try:
        return PASSWORD_FILE.read_text().strip()
    except FileNotFoundError:
        password = secrets.token_urlsafe(12)
        fd = os.open(PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        return password


def manage(python: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a management command to completion, its output captured; raise when it fails."""
    result = subprocess.run(
        [str(python), "manage.py", *args], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise DemoError(f"manage.py {' '.join(args)} failed (exit {result.returncode}):\n"
                        f"{result.stdout}{result.stderr}")
    return result


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def point_at_stripe(env: dict[str, str], use_environment: bool) -> FakeStripe | None:
    """Start a seeded fake Stripe and point ``env`` at it; None if the environment's key is used."""
    if use_environment and env.get("STRIPE_API_KEY"):
        where = env.get("STRIPE_API_BASE") or "api.stripe.com"
        say(f"the Stripe sync uses STRIPE_API_KEY from the environment, at {where}")
        return None
    fake = FakeStripe().start()  # any key is accepted
    fake.seed(FAKE_STRIPE_INVOICES)
    env.update(STRIPE_API_KEY="sk_test_fake_demo", STRIPE_API_BASE=fake.url)
    return fake


class Demo:
    """The worker and web server subprocesses, and their orderly shutdown."""

    def __init__(self, python: Path, port: int, env: dict[str, str]) -> None:
        self.python = python
        self.port = port
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.wake = threading.Event()  # set by a signal or by a child that exited
        self.stop_requested = False
        self.shutting_down = False

    def spawn(self, name: str, *args: str) -> None:
        # Each child leads its own process group: runserver's autoreloader forks a second
        # process, and only a group signal reaches both. Ctrl-C therefore comes to us
        # alone, and we decide the order of shutdown.
        proc = subprocess.Popen([str(self.python), "manage.py", *args], cwd=REPO, env=self.env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = proc
        threading.Thread(target=self._watch, args=(proc,), daemon=True).start()

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        proc.wait()
        self.wake.set()

    def on_signal(self, signum: int, frame: object) -> None:
        if self.shutting_down:
            # A second Ctrl-C: runjobs takes its second signal as "stop now, hand jobs back".
            self._signal("runjobs", signal.SIGTERM, whole_group=False)
            return
        self.stop_requested = True
        # Not wake.set() here: the handler runs in the main thread, possibly while it holds
        # the Event's internal lock, and would deadlock on it. A thread waits its turn.
        threading.Thread(target=self.wake.set, daemon=True).start()

    def dead(self) -> list[str]:
        return [f"{name} (exit {p.returncode})" for name, p in self.procs.items()
                if p.poll() is not None]

    def wait_ready(self, url: str, timeout: float) -> None:
        """Wait until ``url`` answers 200 while every child lives; raise DemoError if not."""
        deadline = time.monotonic() + timeout
        while not answers_http(url):
            if self.stop_requested:
                raise KeyboardInterrupt
            if self.dead():
                raise DemoError(f"exited before the site came up: {', '.join(self.dead())}")
            if time.monotonic() > deadline:
                raise DemoError(f"{url} did not answer within {timeout:g}s")
            self.wake.wait(0.25)  # the poll interval; a signal or a child's exit cuts it short

    def run_until_stopped(self) -> int:
        """Block until a signal or a child's exit; return 0 for a signal, 1 for a crash."""
        while not self.stop_requested and not self.dead():
            self.wake.wait()
            self.wake.clear()
        if self.stop_requested:
            return 0
        say(f"stopping: {', '.join(self.dead())} exited on its own")
        return 1

    def _signal(self, name: str, signum: int, *, whole_group: bool) -> None:
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            (os.killpg if whole_group else os.kill)(proc.pid, signum)

    def shutdown(self) -> None:
        """Stop the worker and the server, politely first, within a deadline (idempotent)."""
        if self.shutting_down:
            return
        self.shutting_down = True
        # The worker supervises its own job processes: signal it alone. runserver's
        # autoreloader does not pass signals on to the server it forked: signal the group.
        self._signal("runjobs", signal.SIGTERM, whole_group=False)
        self._signal("runserver", signal.SIGTERM, whole_group=True)
        plan = [("runjobs", WORKER_STOP_TIMEOUT), ("runserver", SERVER_STOP_TIMEOUT)]
        for name, timeout in plan:
            proc = self.procs.get(name)
            if proc is None:
                continue
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop within {timeout}s; killing it")
            # Leftovers in the group (the autoreloader's child, job processes) go too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def shop_guide(base: str, fake: FakeStripe | None, mail_dir: Path | None) -> str:
    """What to try in the shop example, for the lines printed under the credentials."""
    lines = [
        '  The shop example: in Jobs > Schedules, select "Nightly Stripe order sync" and run it',
        "  now; orders appear under Shop > Orders and their confirmation emails are sent.",
    ]
    if mail_dir is not None:
        lines.append(f"  Emails land in {mail_dir.relative_to(REPO)}/ as .log files.")
    lines.append(f"  Place an order by hand: {base}/shop/orders/new/")
    if fake is not None:
        lines += [
            f"  Stripe is a fake at {fake.url} with {len(fake.invoices)} invoices. Break it:",
            f"    curl -X POST '{fake.url}/_fake/fail?status=500&count=3'  # 3 requests fail",
            f"    curl -X POST '{fake.url}/_fake/fail?status=429'          # a rate limit",
            f"    curl -X POST {fake.url}/_fake/invoices                   # a new invoice",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="runserver port (default 8000)")
    parser.add_argument("--check", action="store_true",
                        help="start everything, check it answers, stop, exit 0")
    options = parser.parse_args(argv)

    python = _bootstrap.ensure_venv("dev")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="example_project.settings",
               PYTHONUNBUFFERED="1")
    # django-environ drops the first "/" after "filemail://": "filemail:///" + "/abs/path".
    mail_to_files = "EMAIL_URL" not in env
    env.setdefault("EMAIL_URL", f"filemail:///{MAIL_DIR}")

    say("migrating the database")
    manage(python, "migrate", "--noinput", env=env)
    password = admin_password()
    state = manage(python, "shell", "-c", _ENSURE_ADMIN,
                   env=dict(env, DEMO_ADMIN_USERNAME=ADMIN_USERNAME,
                            DEMO_ADMIN_PASSWORD=password)).stdout.strip().splitlines()[-1]
    if state == "created":
        say(f"created the superuser {ADMIN_USERNAME!r}")

    if not port_is_free(options.port):
        raise DemoError(f"port {options.port} on 127.0.0.1 is in use; pick another with --port")
    base = f"http://127.0.0.1:{options.port}"
    fake_stripe = point_at_stripe(env, use_environment=not options.check)
    demo = Demo(python, options.port, env)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, demo.on_signal)
    try:
        demo.spawn("runjobs", "runjobs")
        demo.spawn("runserver", "runserver", f"127.0.0.1:{options.port}")
        demo.wait_ready(f"{base}/admin/login/", READY_TIMEOUT)
        if state == "password-differs":
            credentials = (f"user {ADMIN_USERNAME!r} already existed with another password "
                           "(reset it: .venv/bin/python manage.py changepassword "
                           f"{ADMIN_USERNAME})")
        else:
            credentials = f"user {ADMIN_USERNAME}  password {password}"
        print(f"\n  django-jobs demo: {base}/admin/\n  {credentials}\n"
              f"  (password kept in {PASSWORD_FILE.relative_to(REPO)})\n", flush=True)
        print(shop_guide(base, fake_stripe, MAIL_DIR if mail_to_files else None), flush=True)
        if options.check:
            if demo.dead():
                raise DemoError(f"exited: {', '.join(demo.dead())}")
            assert fake_stripe is not None
            say("running the Stripe sync and waiting for its orders' emails")
            chain = manage(python, "shell", "-c", _CHECK_CHAIN, env=dict(
                env, DEMO_CHECK_TIMEOUT=str(CHAIN_TIMEOUT),
                DEMO_INVOICE_IDS=" ".join(fake_stripe.invoices)))
            say(chain.stdout.strip().splitlines()[-1])
            say("the admin answers and the worker is running; stopping both")
            demo.shutdown()
            # A worker that crashes on its way out (or on its first claim) fails the check.
            worker_exit = demo.procs["runjobs"].returncode
            if worker_exit != 0:
                raise DemoError(f"runjobs exited {worker_exit} after SIGTERM instead of 0")
            say("check passed")
            return 0
        say("running; Ctrl-C stops the worker and the web server")
        return demo.run_until_stopped()
    except KeyboardInterrupt:
        return 0
    finally:
        demo.shutdown()
        if fake_stripe is not None:
            fake_stripe.stop()
        say("stopped")


if __name__ == "__main__":
    _bootstrap.require_python()
    try:
        sys.exit(main(sys.argv[1:]))
    except (DemoError, _bootstrap.BootstrapError) as exc:
        print(f"example_project/demo.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C before the worker and server started
        sys.exit(130)
