"""Presence: the worker's row in the worker table, its heartbeat thread, and stop requests.

The heartbeat runs in a thread of the main process and reads only what the main loop publishes
for it: an immutable snapshot of the held ids (``Ledger.held``, through ``held``) and the time the
loop last went round (``loop_turned``). It never looks at the loop's containers.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime

from django.db import DatabaseError, OperationalError, connections

from ..conf import jobs_settings
from ..db import channel, claims
from ..log import log_event
from ..models import CONTROL_JOINED, KnownName
from ..models import Worker as WorkerRow
from ..registry import registry
from ..services import ServiceContext
from ..services.health import HealthFile
from ..services.rescue import own_previous_ids, pid_namespace, rescue
from .ledger import Held
from .reconnect import DB_DOWN, DatabaseLink, first_line

#: How often (seconds) a live worker records its job names as known (KnownName): the sweep of jobs
#: nobody knows (services/unknown.py) allows this much more than UNKNOWN_JOB_GRACE.
NAMES_EVERY = 60.0


def default_worker_id() -> str:
    """The worker id ``runjobs`` uses without ``--worker-id``: host name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Presence:
    """How a worker shows it is alive (its row, its heartbeats) and learns what to stop."""

    def __init__(
        self, *, context: ServiceContext, queues: list[str], concurrency: int, link: DatabaseLink,
        held: Callable[[], Held], wake_fd: int,
    ) -> None:
        self.context = context
        self.using = context.using
        self.worker_id = context.worker_id
        self.clock: Callable[[], datetime] = context.clock
        self.queues = queues
        self.concurrency = concurrency
        self.link = link
        self.held = held
        self.wake_fd = wake_fd
        #: When the main loop last went round (it sets this); the heartbeat stops if it stalls.
        self.loop_turned = time.monotonic()
        # Job ids someone asked to stop, filled by the heartbeat thread and the listener.
        self._stop_ids: set[int] = set()
        self._stop_lock = threading.Lock()
        self._heartbeat: Heartbeat | None = None
        #: The job names registered in this worker's code (what it claims; see KnownName).
        self.names = registry.names()
        self._names_said = 0.0
        #: What ``manage.py jobs health`` reads (see services/health.py).
        self.health = HealthFile(self.using, self.worker_id)

    # -- the worker's row -----------------------------------------------------------------------

    def register(self) -> None:
        """Rescue jobs left running by this worker's own earlier incarnations, and write its row.

        In that order: an earlier incarnation with the same id left its declaration of the jobs it
        may have started in the row (Worker.may_start), which rescue reads and the new row clears.
        """
        self.health.write(loop_turned_at=time.time())
        for _attempt in range(60):
            try:
                rescue(self.using, now=self.clock(), rescuer=self.worker_id, own=own_previous_ids(self.context))
                now = self.clock()
                self._write_row({"started_at": now, "last_heartbeat": now, "running": [], "listed_at": now,
                                 "may_start": []})
                self.say_names()
                # The others' shares of limited slots shrink: they read the fleet again at once.
                channel.notify(CONTROL_JOINED, self.using, control=True)
                self.link.ok()
                return
            except DB_DOWN as exc:
                self.link.lost(exc)
                # Waiting for the database is being alive: `jobs health` must not fail (and get
                # the container restarted) while the worker rides out an outage at its start.
                while (left := self.link.down_until - time.monotonic()) > 0:
                    self.health.write(loop_turned_at=time.time())
                    time.sleep(min(left, float(jobs_settings.HEARTBEAT_INTERVAL)))
        raise RuntimeError("the database stayed unreachable; giving up")

    def _write_row(self, fields: dict[str, object]) -> None:
        """Write this worker's row (create it if it is gone) with ``fields``."""
        WorkerRow.objects.using(self.using).update_or_create(
            worker_id=self.worker_id,
            defaults={"hostname": socket.gethostname(), "pid": os.getpid(), "queues": self.queues,
                      "concurrency": self.concurrency, "pid_namespace": pid_namespace(), "names": self.names,
                      **fields},
        )

    def write_row_again(self, may_start: list[int]) -> bool:
        """Write this worker's row again, declaring ``may_start``, after a rescuer took it for
        dead and deleted it (see Ledger._row_gone); False while the database is unreachable."""
        running, listed_at = self.held()
        try:
            with self.link.call():
                self._write_row({"last_heartbeat": self.clock(), "running": list(running),
                                 "listed_at": listed_at, "may_start": may_start})
        except DB_DOWN as exc:
            self.link.lost(exc)
            return False
        return True

    def unregister(self) -> None:
        """Delete this worker's row (rescue removes it if this fails) and its health file."""
        self.health.remove()
        try:
            self.say_names()
            WorkerRow.objects.using(self.using).filter(worker_id=self.worker_id).delete()
        except DatabaseError:
            pass  # rescue removes stale rows

    def say_names(self) -> None:
        """Record that a live worker knows this worker's job names, now (see KnownName)."""
        KnownName.objects.db_manager(self.using).saw(self.names, self.clock())
        self._names_said = time.monotonic()

    # -- heartbeats -----------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        """Start the heartbeat thread."""
        self.health.write(loop_turned_at=self._loop_turned_at())
        self._heartbeat = Heartbeat(self)
        self._heartbeat.start()

    def stop_heartbeat(self) -> None:
        """Ask the heartbeat thread to stop after its current beat (join_heartbeat() waits)."""
        if self._heartbeat is not None:
            self._heartbeat.stop()

    def join_heartbeat(self) -> None:
        """Wait (a little) for the heartbeat thread to end."""
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)

    def beat(self) -> None:
        """Record a heartbeat and look for stop requests (called from the heartbeat thread)."""
        loop_turned_at = self._loop_turned_at()
        stalled = time.monotonic() - self.loop_turned
        if stalled > float(jobs_settings.RESCUE_AFTER) / 2:
            # A heartbeat promises the worker will record its jobs' outcomes. A main loop stuck
            # this long can't, so stop promising: after RESCUE_AFTER its jobs are rescued. Unless
            # it only waits for a lock on our tables: it will record them once the lock goes, and
            # rescuing them meanwhile would run every one of them twice.
            if not self.link.waiting_on_lock():
                self.health.write(loop_turned_at=loop_turned_at)
                log_event("loop_stalled", logging.ERROR, worker=self.worker_id, seconds=f"{stalled:.0f}")
                return
            self.health.write(loop_turned_at=loop_turned_at, waiting_on_lock=True)
            log_event("waiting_on_lock", logging.WARNING, worker=self.worker_id, seconds=f"{stalled:.0f}")
        else:
            self.health.write(loop_turned_at=loop_turned_at)
        running, listed_at = self.held()
        fields = {"last_heartbeat": self.clock(), "running": list(running), "listed_at": listed_at}
        updated = WorkerRow.objects.using(self.using).filter(worker_id=self.worker_id).update(**fields)
        if not updated:
            # A rescuer took us for dead (a long freeze or outage); come back, and let fencing
            # drop any outcome of a job that was rescued meanwhile.
            log_event("worker_reappeared", logging.WARNING, worker=self.worker_id)
            self._write_row(fields)
        if time.monotonic() - self._names_said >= NAMES_EVERY:
            self.say_names()
        try:
            stops = claims.stop_requested(self.using, list(running), lock_timeout=1.0)
        except OperationalError as exc:
            if not claims.is_lock_timeout(exc):
                raise
            return  # the job table is locked: look again at the next beat
        self.request_stops(stops)

    def _loop_turned_at(self) -> float:
        """When the main loop last went round, in wall-clock seconds."""
        return time.time() - (time.monotonic() - self.loop_turned)

    # -- stop requests --------------------------------------------------------------------------

    def request_stops(self, job_ids: list[int]) -> None:
        """Note that someone asked to stop these jobs, and wake the main loop (any thread)."""
        if not job_ids:
            return
        with self._stop_lock:
            new = set(job_ids) - self._stop_ids
            self._stop_ids.update(new)
        if new:
            try:
                os.write(self.wake_fd, b"x")
            except OSError:
                pass

    def stop_requests(self) -> set[int] | None:
        """The ids of the jobs someone asked to stop (a copy), or None when there are none."""
        with self._stop_lock:
            if not self._stop_ids:
                return None
            return set(self._stop_ids)

    def keep_stop_requests(self, held: list[int]) -> None:
        """Forget the stop requests of jobs this worker no longer holds."""
        with self._stop_lock:
            self._stop_ids &= set(held)


class Heartbeat(threading.Thread):
    """Writes the worker's heartbeat and picks up stop requests, on its own connection.

    A thread of the main process, not a child: jobs run in children, so a job stuck in a C call
    can't starve it, while a frozen or killed worker stops beating, which is what rescue looks for.
    """

    def __init__(self, presence: Presence):
        super().__init__(name="django_jobs-heartbeat", daemon=True)
        self.presence = presence
        self.stopping = threading.Event()

    def run(self) -> None:
        interval = float(jobs_settings.HEARTBEAT_INTERVAL)
        using = self.presence.using
        try:
            while not self.stopping.wait(interval):
                try:
                    self.presence.beat()
                except Exception as exc:  # noqa: BLE001 - keep beating once the database is back
                    log_event("heartbeat_failed", logging.WARNING, worker=self.presence.worker_id,
                              error=first_line(exc))
                    try:
                        connections[using].close()
                    except Exception:  # noqa: BLE001
                        connections[using].connection = None
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stopping.set()
