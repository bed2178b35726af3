"""A statement's snapshot against a commit made while it runs: a statement that walks many rows
before the one that matters, run in another session, and a change committed once it is running.

Under READ COMMITTED a statement that locks a row changed since its snapshot checks its WHERE
clause again on the new row, but its subqueries still read the old snapshot. Seeding rows for the
statement to lock first (``copies``) gives a window of about a second between its start and its
lock of the last row, wide enough to commit something in it without a sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection, connections

from django_jobs.db import tables
from django_jobs.models import Job

from .procs import wait_until


def copies(job: Job, n: int) -> None:
    """Insert ``n`` copies of ``job``'s row (their ids follow its, in the order of the walks)."""
    columns = ", ".join(f.column for f in Job._meta.concrete_fields if f.column != "id")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {tables.TABLE} ({columns}) SELECT {columns} FROM {tables.TABLE} "
            f"CROSS JOIN generate_series(1, %s) WHERE id = %s",
            [n, job.pk],
        )
        cursor.execute(f"ANALYZE {tables.TABLE}")


@dataclass
class Running:
    """What the statement's call returned or raised, once it has ended."""

    returned: list[Any]
    raised: list[BaseException]

    @property
    def ended(self) -> bool:
        return bool(self.returned or self.raised)


@contextmanager
def running(watcher: Any, like: str, call: Callable[[], Any]) -> Iterator[Running]:
    """Run ``call`` in a thread (on its own connection) and come back once its statement, whose
    text is SQL LIKE ``like``, is running, as ``watcher`` (a session outside any transaction) sees
    it; on leaving, wait for the call to end."""
    outcome = Running([], [])

    def run() -> None:
        try:
            outcome.returned.append(call())
        except BaseException as exc:
            outcome.raised.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_until(
            lambda: outcome.ended or watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query LIKE %s",
                [like],
            ).fetchone()[0] == 1,
            message=f"a statement like {like!r} to run",
            interval=0.001,
        )
        yield outcome
    finally:
        thread.join()
