"""The main loop's database connection: statements in flight, outages, and the backoff between tries."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections

from ..conf import jobs_settings
from ..db import claims
from ..log import log_event

# Errors that mean "the database went away", which the worker waits out instead of dying.
DB_DOWN = (OperationalError, InterfaceError)


def first_line(exc: BaseException) -> str:
    """An exception as one short line for a log field."""
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


class DatabaseLink:
    """Tells the worker's parts whether the database is reachable, and when to try it again."""

    def __init__(self, using: str, worker_id: str) -> None:
        self.using = using
        self.worker_id = worker_id
        self.backoff = float(jobs_settings.RECONNECT_BACKOFF)
        #: Monotonic time before which no statement is tried (0: the database is up).
        self.down_until = 0.0
        #: A statement's reply was lost: it may have claimed rows this worker never received
        #: (the ledger's reconcile() clears it).
        self.unsure = False
        # Set while the main loop waits for a statement: since when, and on which connection.
        self._call_since: float | None = None
        self._wrapper: Any = None

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Mark the main loop as waiting for the database (see waiting_on_lock)."""
        wrapper = connections[self.using]
        self._wrapper = wrapper if wrapper.vendor == "postgresql" else None
        self._call_since = time.monotonic()
        try:
            yield
        finally:
            self._call_since = None

    def waiting_on_lock(self) -> bool:
        """Whether the main loop is blocked in a statement that waits for a lock on the server
        (one a migration or VACUUM FULL holds, say): its reply will come once the lock goes.

        Called from the heartbeat thread. Not behind a transaction-pooling PgBouncer
        (LISTEN_NOTIFY off): the backend pid the client knows is not the server process running
        the statement there.
        """
        wrapper = self._wrapper
        if self._call_since is None or wrapper is None or not jobs_settings.LISTEN_NOTIFY:
            return False
        info = getattr(wrapper.connection, "info", None)  # read now: it may have reconnected
        pid = getattr(info, "backend_pid", None)
        return pid is not None and claims.waiting_on_lock(self.using, pid)

    def lost(self, exc: BaseException) -> None:
        """The database went away: drop the connection and wait before the next try."""
        log_event(
            "db_unavailable", logging.WARNING, worker=self.worker_id, error=first_line(exc),
            retry_in=f"{self.backoff:.1f}s",
        )
        try:
            connections[self.using].close()
        except DatabaseError:
            pass
        connections[self.using].connection = None
        self.down_until = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, 30.0)
        # A statement cut off with its connection may still have committed (see Ledger.reconcile).
        self.unsure = True

    def ok(self) -> None:
        """A statement went through: the database is back, if it was away."""
        if self.backoff != float(jobs_settings.RECONNECT_BACKOFF):
            log_event("db_available", worker=self.worker_id)
        self.backoff = float(jobs_settings.RECONNECT_BACKOFF)
        self.down_until = 0.0

    def is_down(self) -> bool:
        """Whether to leave the database alone for now (it went away moments ago)."""
        return time.monotonic() < self.down_until
