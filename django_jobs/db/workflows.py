"""Workflows at enqueue time: holding the upstream jobs a new job waits on, and writing its edges.

The outcome write's side (a success queues what waited on it, a failure stops it) is in
db/claims.py; the operator verbs' side in models.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Dependency
from .connection import run_prepared
from .tables import TABLE

DEPENDENCY_TABLE = Dependency._meta.db_table

# Lock the upstream rows (in id order, so two enqueues after the same jobs can't deadlock) and
# bump their downstream_version; return their statuses as they are once locked. A worker writing
# one's outcome meanwhile commits first, and this sees its outcome; one that starts its write
# while we hold the lock waits for our commit, sees the bump and runs again with a snapshot that
# holds the new job and its edges (db/claims.py). Either way the new job's count is right.
HOLD_UPSTREAM = (
    f"WITH held AS (SELECT id FROM {TABLE} WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id FOR NO KEY UPDATE) "
    f"UPDATE {TABLE} AS j SET downstream_version = j.downstream_version + 1 FROM held "
    f"WHERE j.id = held.id RETURNING j.id, j.status"
)
# Every new job waits on every upstream job: one edge per pair.
ADD_EDGES = (
    f"INSERT INTO {DEPENDENCY_TABLE} (upstream_id, downstream_id) "
    f"SELECT u, d FROM unnest(%(upstream)s::bigint[]) AS u CROSS JOIN unnest(%(downstream)s::bigint[]) AS d"
)


def hold_upstream(using: str, ids: Sequence[int]) -> dict[int, str]:
    """Lock these jobs until the transaction ends and return {id: status}; missing ids don't exist."""
    return dict(run_prepared(using, HOLD_UPSTREAM, {"ids": sorted(ids)}, prepare=False))


def add_edges(using: str, upstream: Sequence[int], downstream: Sequence[int]) -> None:
    """Make each of ``downstream`` wait on each of ``upstream``."""
    run_prepared(using, ADD_EDGES, {"upstream": list(upstream), "downstream": list(downstream)}, prepare=False)
