"""The listener: a thread holding a LISTEN connection that wakes the worker's loop on each NOTIFY."""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time

from django.db import connections

from ..conf import jobs_settings
from ..db import channel
from ..log import log_event


class Listener(threading.Thread):
    """Holds a LISTEN connection and pokes the worker's wake-up pipe on each NOTIFY."""

    def __init__(self, using: str, wake_fd: int, queues: set[str]):
        super().__init__(name="django_jobs-listener", daemon=True)
        self.using = using
        self.wake_fd = wake_fd
        self.queues = queues
        self.stopping = threading.Event()
        # Set on a control notification ("!stop", "!pause"): the main loop re-reads state.
        self.control = threading.Event()
        # Future run_at times announced by enqueues (epoch seconds, a heap).
        self.due: list[float] = []
        self.due_lock = threading.Lock()

    def note_due(self, epoch: float) -> None:
        """Remember a future run_at announced by an enqueue, so the worker wakes for it."""
        with self.due_lock:
            if len(self.due) < 10_000:  # past that, polling covers the rest
                heapq.heappush(self.due, epoch)

    def take_due(self, covered: float) -> float | None:
        """The earliest announced run_at not yet covered by a claim, as a monotonic time (None if
        none); it may be in the past.

        ``covered`` is the epoch time of the worker's last claim: a job due by then was ready for
        that claim, so its entry is dropped. One due between the claim's clock reading and now
        stays, and wakes the worker at once: dropping every time already reached lost jobs that
        fell due during the claim's round trip until the next wake-up (up to OUTCOME_DELAY or
        POLL_INTERVAL later).
        """
        with self.due_lock:
            while self.due and self.due[0] <= covered:
                heapq.heappop(self.due)
            return time.monotonic() + (self.due[0] - time.time()) if self.due else None

    def _wake(self) -> None:
        try:
            os.write(self.wake_fd, b"n")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the worker is awake anyway

    def on_payload(self, payload: str) -> None:
        """Act on one notification: a control message, or a wake-up for a queue."""
        if payload.startswith("!") and " " not in payload:
            self.control.set()
            self._wake()
            return
        try:
            queue, due = channel.parse_wakeup(payload)
        except ValueError:
            # Not ours to understand (another version, or someone else's NOTIFY on the channel):
            # waking costs one claim, while dropping it could leave a job waiting for a poll.
            log_event("notify_unreadable", logging.WARNING, payload=repr(payload[:200]))
            self._wake()
            return
        if self.queues and queue not in self.queues:
            return
        if due is not None:
            self.note_due(due)
        self._wake()

    def run(self) -> None:
        wrapper = connections[self.using]
        delay = float(jobs_settings.RECONNECT_BACKOFF)
        while not self.stopping.is_set():
            conn = None
            try:
                conn = wrapper.get_new_connection(wrapper.get_connection_params())
                conn.autocommit = True
                conn.execute(f"LISTEN {channel.CHANNEL}")
                delay = float(jobs_settings.RECONNECT_BACKOFF)
                # Anything enqueued while we weren't listening would otherwise wait for a poll.
                self._wake()
                while not self.stopping.is_set():
                    for notify in conn.notifies(timeout=1.0):
                        self.on_payload(notify.payload)
            except Exception as exc:  # noqa: BLE001 - any failure here means "reconnect later"
                if self.stopping.is_set():
                    break
                log_event("listen_lost", logging.WARNING, error=str(exc)[:200], retry_in=f"{delay:.1f}s")
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass

    def stop(self) -> None:
        self.stopping.set()

