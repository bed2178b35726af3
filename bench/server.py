"""The PostgreSQL server the benchmark runs on: its bench database's URL, creating and dropping it.

No Django here: the database must exist before Django connects to it.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from tests.support.pgcluster import CONTROL_ENV


def with_database(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name``."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def throwaway_cluster() -> bool:
    """Whether bench/run.py started the server for this run (fsync off: faster than a real one)."""
    return bool(os.environ.get(CONTROL_ENV))


def _admin(server_url: str, name: str) -> psycopg.Connection[Any]:
    """A connection to another database of the server, to create or drop ``name`` from.

    Like Django creating a test database: the ``postgres`` database first, else the URL's own
    (which tests/run.py's URLs don't always name an existing one).
    """
    current = urlsplit(server_url).path.lstrip("/")
    candidates = ["postgres"] + ([current] if current and current not in ("postgres", name) else [])
    for candidate in candidates:
        try:
            return psycopg.connect(
                with_database(server_url, candidate), autocommit=True, connect_timeout=10
            )
        except psycopg.OperationalError:
            if candidate == candidates[-1]:
                raise
    raise AssertionError("unreachable")


def recreate_database(server_url: str, name: str) -> None:
    """Drop ``name`` (disconnecting whoever uses it) and create it empty."""
    with _admin(server_url, name) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(server_url: str, name: str) -> None:
    with _admin(server_url, name) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
