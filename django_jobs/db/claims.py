"""A worker's statements: the claim, the outcome write (with the next claim in one round trip),
stop requests, and giving back what a lost reply left behind."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from django.db import DataError, OperationalError, connections, transaction
from django.db.models import Min
from psycopg.types.json import Jsonb

from ..lifecycle import STOPPED_ON_REQUEST, Transition
from ..models import FINISHED_STATUSES, READY_STATUSES, Dependency, Job, JobStatus, Pause
from . import channel
from .connection import dump_json, is_deadlock, json_value, placeholders, run_prepared
from .tables import (
    KEY_EXPR,
    KEYED_SQL,
    PARKED_SQL,
    PLAIN_SQL,
    READY_SQL,
    TABLE,
    WORKER_TABLE,
    lost_count_sql,
    status_in,
    status_is,
)

CLAIM_COLUMNS = (
    "id", "name", "args", "kwargs", "queue", "attempts", "max_attempts", "timeout", "attempts_at_retry",
    "traceparent", "tracestate", "downstream_version",
)


def _claimable_sql(filter_queues: bool, columns: str = "id") -> str:
    # Walks django_jobs_ready_idx in claim order (priority DESC, run_at, id). FOR UPDATE SKIP
    # LOCKED lets concurrent workers pass over rows another worker is claiming instead of waiting
    # on its lock. As a CTE it keeps LIMIT attached to the locking SELECT (an ``id IN (subquery)``
    # can be planned as a join that runs the subquery more than once).
    queue_filter = "AND queue = ANY(%(queues)b::text[]) " if filter_queues else ""
    return (
        f"SELECT {columns}, name = ANY(%(names)b::text[]) AS known FROM {TABLE} WHERE {READY_SQL} AND {PLAIN_SQL} "
        f"AND run_at <= %(now)s {queue_filter}"
        f"AND queue <> ALL(%(paused_queues)b::text[]) AND name <> ALL(%(paused_names)b::text[]) "
        f"ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
    )


# Rows of names the claiming worker's code doesn't register (%(names)s are the ones it does) are
# not claimed but set aside, still queued, in the same statement: they leave the claim's index,
# so neither this worker nor another that doesn't know them walks over them again, and a worker
# that knows the name puts them back (UNPARK). Filtering them out of the walk instead would make
# every claim step over all of them (10,000 queued by newer code during a deploy: every claim).
_PARK = (
    f"parked AS (UPDATE {TABLE} SET parked_at = %(now)s FROM claimable "
    f"WHERE {TABLE}.id = claimable.id AND NOT claimable.known RETURNING {TABLE}.id, {TABLE}.name)"
)


# What every claim writes (this one, the gated claim's, a handed-over slot's): running, one more
# attempt (the fencing token), this worker, and no stale stop request.
CLAIM_SET = (
    f"SET status = '{JobStatus.RUNNING.value}', attempts = attempts + 1, "
    f"started_at = %(now)s, worker_id = %(worker_id)s, stop_requested_at = NULL"
)
# Marks the claimable rows running in the same statement, so no claimed row is ever seen as
# queued, and no transaction stays open while the job runs.
_CLAIM_UPDATE = (
    f"UPDATE {TABLE} {CLAIM_SET} "
    f"FROM claimable WHERE {TABLE}.id = claimable.id AND claimable.known "
    f"RETURNING {', '.join(f'{TABLE}.{c}' for c in CLAIM_COLUMNS)}"
)


def _claim_sql_pg(filter_queues: bool) -> str:
    return (
        f"WITH claimable AS ({_claimable_sql(filter_queues)}), {_PARK}, claimed AS ({_CLAIM_UPDATE}) "
        f"SELECT 'claimed', {', '.join(CLAIM_COLUMNS)} FROM claimed UNION ALL "
        f"SELECT 'parked', id, name, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM parked"
    )


_CLAIM_PG = {True: _claim_sql_pg(True), False: _claim_sql_pg(False)}


def claim_sql(using: str, *, filter_queues: bool = False) -> str:
    """The claim statement's text (for EXPLAIN in tests and the benchmark)."""
    return _CLAIM_PG[filter_queues]


def claim(
    using: str,
    *,
    worker_id: str,
    limit: int,
    now: datetime,
    queues: Sequence[str] = (),
    paused_queues: Sequence[str] = (),
    paused_names: Sequence[str] = (),
    names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Claim up to ``limit`` ready jobs for ``worker_id`` in one statement and return them.

    Only jobs named in ``names`` (default: every registered job) are claimed; ready rows of other
    names met on the way are set aside (see _PARK). ``attempts`` goes up here, at the claim: it is
    the fencing token every outcome write checks.
    """
    if names is None:
        from ..registry import registry

        names = registry.names()
    return claim_and_park(using, worker_id=worker_id, limit=limit, now=now, queues=queues,
                          paused_queues=paused_queues, paused_names=paused_names, names=names)[0]


def claim_and_park(
    using: str,
    *,
    worker_id: str,
    limit: int,
    now: datetime,
    names: Sequence[str],
    queues: Sequence[str] = (),
    paused_queues: Sequence[str] = (),
    paused_names: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """Claim as claim() does; also return the (id, name) of the rows it set aside (_PARK)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return _claim_sqlite(using, worker_id=worker_id, limit=limit, now=now, queues=queues,
                             paused_queues=paused_queues, paused_names=paused_names, names=names)
    claimed, parked = [], []
    for row in run_prepared(using, _CLAIM_PG[bool(queues)], worker=True, params={
        "now": now, "queues": list(queues), "paused_queues": list(paused_queues),
        "paused_names": list(paused_names), "limit": limit, "worker_id": worker_id, "names": list(names),
    }):
        if row[0] == "claimed":
            claimed.append(row[1:])
        else:
            parked.append((row[1], row[2]))
    return claimed_rows(claimed), parked


def claimed_rows(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    # Arguments stay JSON text (one line: PostgreSQL's jsonb output has no newlines): the worker
    # splices them into the message for the child, which is the only process that needs them.
    return [
        {
            "id": r[0],
            "name": r[1],
            "args_json": json_value(r[2]),
            "kwargs_json": json_value(r[3]),
            "queue": r[4],
            "attempt": r[5],
            "max_attempts": r[6],
            "timeout": r[7],
            "attempts_at_retry": r[8],
            # The enqueue's trace context (NULL unless it was traced): see tracing.py.
            "traceparent": r[9],
            "tracestate": r[10],
            # Whether jobs waited downstream of it at its claim (workflows): its outcome is then
            # written with the workflow steps (see sync()).
            "downstream": bool(r[11]),
        }
        for r in rows
    ]


def _claim_sqlite(
    using: str, *, worker_id: str, limit: int, now: datetime, queues: Sequence[str],
    paused_queues: Sequence[str], paused_names: Sequence[str], names: Sequence[str],
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    # SQLite has one writer at a time, so a single UPDATE … WHERE id IN (SELECT … LIMIT n) is
    # already atomic: no row can be claimed twice. (No SKIP LOCKED; one worker is the supported
    # setup for local development.) Unknown names are set aside by a statement of their own in
    # the same transaction.
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    filters = [READY_SQL, PLAIN_SQL, "run_at <= %s"]
    params: list[Any] = [adapt(now)]
    for column, values, op in (("queue", queues, "IN"), ("queue", paused_queues, "NOT IN"),
                               ("name", paused_names, "NOT IN")):
        if values:
            filters.append(f"{column} {op} {placeholders(values)}")
            params.extend(values)
    select = f"SELECT id, name FROM {TABLE} WHERE {' AND '.join(filters)} ORDER BY priority DESC, run_at, id LIMIT %s"
    known = set(names)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(select, [*params, limit])
        rows = cursor.fetchall()
        parked = [(job_id, name) for job_id, name in rows if name not in known]
        mine = [job_id for job_id, name in rows if name in known]
        if parked:
            ids = [job_id for job_id, _ in parked]
            cursor.execute(f"UPDATE {TABLE} SET parked_at = %s WHERE id IN {placeholders(ids)}", [adapt(now), *ids])
        if not mine:
            return [], parked
        cursor.execute(
            f"UPDATE {TABLE} SET status = '{JobStatus.RUNNING.value}', attempts = attempts + 1, "
            f"started_at = %s, worker_id = %s, stop_requested_at = NULL WHERE id IN {placeholders(mine)} "
            f"RETURNING {', '.join(CLAIM_COLUMNS)}",
            [adapt(now), worker_id, *mine],
        )
        claimed = sorted(cursor.fetchall(), key=lambda r: mine.index(r[0]))
    return claimed_rows(claimed), parked


@dataclass(slots=True)
class OutcomeWrite:
    """One attempt's outcome as record_outcomes() writes it: lifecycle's decision, and the claim
    (job id and attempt) that fences it."""

    job_id: int
    attempt: int
    ended_at: datetime
    transition: Transition
    #: The worker whose claim fences the write; None: the writer itself (rescue writes for others).
    fence_worker: str | None = None

    @property
    def finished_at(self) -> datetime | None:
        return self.ended_at if self.transition.status in FINISHED_STATUSES else None


_STOPPED = JobStatus.STOPPED.value

# Every outcome of a batch in one statement, one commit. Each row is fenced by the claim: the
# job must still be running *this* attempt for *this* worker, so a worker that was frozen while
# its job was rescued and claimed again updates nothing and can't overwrite the newer attempt.
# A stop request beats every other outcome: the statement applies lifecycle.on_stop_request()
# (and its stopped_entry()) itself, from stop_requested_at as it finds it, so a request that
# lands while the outcome is written is never lost.
#
# The fence's values (status running, this worker's id) come in as arrays like the outcomes,
# though they are the same in every row. As join conditions they can't match the partial
# django_jobs_running_idx, whose statistics say it is empty (nothing is running when ANALYZE
# looks); compared with constants, the generic plan drove the update from that index and scanned
# the unnest once per running job: 8 ms for 100 outcomes. This way the only plan is one lookup
# by primary key per outcome. The history entries come as one JSON array (one json.dumps() per
# batch), which each row reads by its position in the arrays.
OUTCOME_UPDATE = (
    f"UPDATE {TABLE} AS j SET "
    f"status = CASE WHEN j.stop_requested_at IS NULL THEN v.status ELSE '{JobStatus.STOPPED.value}' END, "
    f"worker_id = '', "
    f"finished_at = CASE WHEN j.stop_requested_at IS NULL THEN v.finished_at ELSE v.ended_at END, "
    f"history = j.history || jsonb_build_array(CASE WHEN j.stop_requested_at IS NULL "
    f"OR v.entry->>'outcome' = '{_STOPPED}' THEN v.entry ELSE v.entry || "
    f"jsonb_build_object('outcome', '{_STOPPED}', 'ended_as', v.entry->'outcome', "
    f"'reason', '{STOPPED_ON_REQUEST}') END), "
    f"run_at = COALESCE(v.run_at, j.run_at), "
    f"result = CASE WHEN v.set_result THEN v.result::jsonb ELSE j.result END, "
    f"last_error = CASE WHEN j.stop_requested_at IS NOT NULL THEN '{STOPPED_ON_REQUEST}' "
    f"ELSE COALESCE(v.last_error, j.last_error) END, "
    f"attempts = j.attempts + CASE WHEN j.stop_requested_at IS NULL THEN v.attempts_delta ELSE 0 END, "
    f"max_attempts = j.max_attempts + v.max_attempts_delta "
    f"FROM (SELECT u.*, %(o_entries)b::jsonb -> (u.n::integer - 1) AS entry "
    f"FROM unnest(%(o_id)b::bigint[], %(o_attempt)b::integer[], %(o_status)b::text[], "
    f"%(o_finished_at)b::timestamptz[], %(o_ended_at)b::timestamptz[], "
    f"%(o_run_at)b::timestamptz[], %(o_set_result)b::boolean[], %(o_result)b::text[], "
    f"%(o_last_error)b::text[], %(o_attempts_delta)b::integer[], %(o_max_attempts_delta)b::integer[], "
    f"%(o_fence_status)b::text[], %(o_fence_worker)b::text[]) WITH ORDINALITY "
    f"AS u(id, attempt, status, finished_at, ended_at, run_at, set_result, result, last_error, "
    f"attempts_delta, max_attempts_delta, fence_status, fence_worker, n)) AS v "
    f"WHERE j.id = v.id AND j.status = v.fence_status AND j.attempts = v.attempt "
    f"AND j.worker_id = v.fence_worker "
    f"RETURNING j.id, j.status, j.downstream_version, j.finished_at"
)

_FINISHED_FOR_GOOD = status_in((JobStatus.DEAD, JobStatus.STOPPED))
_WAITING = status_is(JobStatus.WAITING)
# Workflows, in the statement that writes the outcomes (as CTEs after ``done``, the outcome
# update), so a job is queued, or stopped, in the very commit of its upstream job's outcome:
# - ``released``: each success takes one off the pending_upstream of every job waiting on it, and
#   queues those that reach 0. Two workers finishing upstream jobs of one job at the same moment
#   both update its row: the second waits for the first's commit and then counts down from the
#   first one's result (READ COMMITTED re-reads an updated row), so no decrement is lost and only
#   one of them sees 0. A job some failure stops in the same statement is left to ``cascaded``.
# - ``locked``: both take the rows they change in id order first, so two workers whose outcomes
#   reach the same downstream jobs wait on each other instead of deadlocking. They are found by
#   one primary-key probe per id (``id = ANY(ARRAY(…))``): written ``id IN (…)``, the generic plan
#   of a worker's session (sorts priced out, see WORKER_SESSION) walked the whole primary key in id
#   order instead, reading every row of the table for each outcome of a fan-in's members.
# - ``cascaded``: a job that ended dead or stopped stops everything waiting downstream of it,
#   transitively, each naming that job (lifecycle.upstream_failed()).
# - ``flowcheck``: wakes the workers of the queues that got jobs, announces the jobs it stopped to
#   whoever waits for them (Job.wait(), channel.done_sql()), and refuses the whole statement
#   (it runs again: see run_outcome_statement) when an enqueue after one of these jobs, or a re-arm,
#   committed while this statement waited on that job's row: its snapshot is then older than the
#   new rows, which it can't see. downstream_version as this statement found it (a plain read
#   sees the snapshot) differs then from the row it updated (which is the newest).
# Jobs nothing waits on (downstream_version 0, nearly all) skip every step: the walks start from
# ``done`` rows filtered on it, and each walk is an index probe per row (LATERAL … OFFSET 0 keeps
# the planner from turning it into a scan of the edges).
_DEPENDENCY = Dependency._meta.db_table
STALE_MARK = "django_jobs: a job was added downstream while this outcome was written"
_FLOW = (
    f"ended AS (SELECT id, status, finished_at FROM done WHERE downstream_version > 0 "
    f"AND status IN ('{JobStatus.SUCCEEDED.value}', '{JobStatus.DEAD.value}', '{JobStatus.STOPPED.value}')), "
    f"edges AS (SELECT ended.id AS upstream_id, e.downstream_id, ended.status, ended.finished_at FROM ended "
    f"CROSS JOIN LATERAL (SELECT downstream_id FROM {_DEPENDENCY} WHERE upstream_id = ended.id OFFSET 0) AS e), "
    f"doomed(id, root) AS ("
    f"SELECT downstream_id, upstream_id FROM edges WHERE {_FINISHED_FOR_GOOD} "
    f"UNION SELECT e.downstream_id, doomed.root FROM doomed "
    f"CROSS JOIN LATERAL (SELECT downstream_id FROM {_DEPENDENCY} WHERE upstream_id = doomed.id OFFSET 0) AS e), "
    f"locked AS (SELECT id FROM {TABLE} WHERE id = ANY(ARRAY(SELECT downstream_id FROM edges UNION SELECT id FROM doomed)) "
    f"AND {_WAITING} ORDER BY id FOR NO KEY UPDATE), "
    f"cascaded AS (UPDATE {TABLE} AS d SET status = '{JobStatus.STOPPED.value}', finished_at = r.finished_at, "
    f"stopped_by = r.id, last_error = 'upstream job #' || r.id || ' ended ' || r.status "
    f"FROM (SELECT id, min(root) AS root FROM doomed GROUP BY id) AS x JOIN ended AS r ON r.id = x.root "
    f"JOIN locked ON locked.id = x.id WHERE d.id = x.id AND d.{_WAITING} RETURNING d.id, d.downstream_version), "
    f"released AS (UPDATE {TABLE} AS d SET pending_upstream = GREATEST(d.pending_upstream - c.n, 0), "
    f"status = CASE WHEN d.pending_upstream <= c.n THEN '{JobStatus.QUEUED.value}' ELSE '{JobStatus.WAITING.value}' END "
    f"FROM (SELECT downstream_id AS id, count(*) AS n FROM edges WHERE status = '{JobStatus.SUCCEEDED.value}' "
    f"GROUP BY downstream_id) AS c JOIN locked ON locked.id = c.id "
    f"WHERE d.id = c.id AND d.{_WAITING} AND NOT EXISTS (SELECT 1 FROM doomed WHERE doomed.id = c.id) "
    f"RETURNING d.id, d.status, d.queue, d.run_at), "
    f"flowcheck AS (SELECT (SELECT count(*) FROM (SELECT {channel.wakeup_sql('q.queue', 'q.due')} FROM ("
    f"SELECT queue, min(run_at) AS due FROM released WHERE status = '{JobStatus.QUEUED.value}' GROUP BY queue) AS q) AS n) "
    f"AS notified, (SELECT count(*) FROM (SELECT id, downstream_version FROM done WHERE downstream_version > 0 "
    f"UNION ALL SELECT id, downstream_version FROM cascaded WHERE downstream_version > 0) AS w "
    f"WHERE w.downstream_version <> (SELECT s.downstream_version FROM {TABLE} AS s WHERE s.id = w.id)) AS stale, "
    f"(SELECT count({channel.done_sql('id', 'true')}) FROM cascaded) AS announced) "
)
# The condition on the rows of ``done`` the statement returns: it makes ``flowcheck`` run (a
# SELECT in WITH runs only when read), and fails the statement when it found a stale snapshot.
_FLOW_CHECK = (
    f"(SELECT CASE WHEN stale = 0 THEN notified ELSE ('{STALE_MARK}: ' || stale)::integer END "
    f"FROM flowcheck) IS NOT NULL"
)


def with_workflow_steps(update: str, select: str) -> str:
    """A statement that ends jobs (``update``, returning id, status, downstream_version and
    finished_at) with the workflow steps after it (_FLOW), selecting ``select`` from its rows."""
    return f"WITH RECURSIVE done AS ({update}), {_FLOW}SELECT {select} FROM done WHERE {_FLOW_CHECK}"


# A written outcome that finished its job is announced to whoever waits for it (Job.wait()):
# text, or NULL when it wasn't finished or nobody waits (see channel.done_sql).
_DONE_ANNOUNCED = channel.done_sql(
    "id", "status IN (" + ", ".join(f"'{s.value}'" for s in FINISHED_STATUSES) + ")"
)
# OUTCOME_UPDATE alone (record_outcomes()) with its workflow steps: {job id: status written},
# announcing the finished jobs.
OUTCOME_WRITE = with_workflow_steps(OUTCOME_UPDATE, f"id, status, {_DONE_ANNOUNCED}")


def outcome_params(worker_id: str, outcomes: Sequence[OutcomeWrite]) -> dict[str, Any]:
    # In id order: the update locks its rows in the order of these arrays (one primary-key probe
    # per element), and an enqueue after some of them locks theirs in id order too
    # (db/workflows.HOLD_UPSTREAM). In the order the children replied, each could hold a row the
    # other waits on, and PostgreSQL would abort one: the enqueue, raising to its caller.
    outcomes = sorted(outcomes, key=attrgetter("job_id"))
    decided = [o.transition for o in outcomes]
    return {
        "worker_id": worker_id,
        "o_id": [o.job_id for o in outcomes],
        "o_attempt": [o.attempt for o in outcomes],
        "o_status": [t.status.value for t in decided],
        "o_finished_at": [o.finished_at for o in outcomes],
        "o_ended_at": [o.ended_at for o in outcomes],
        # One JSON array, its items read by position: one json.dumps for the batch instead of one
        # per outcome (~3 µs each), and one parse in PostgreSQL.
        "o_entries": Jsonb([t.history_entry for t in decided]),
        "o_run_at": [t.run_at for t in decided],
        "o_set_result": [t.set_result for t in decided],
        "o_result": [dump_json(t.result) if t.set_result else None for t in decided],
        "o_last_error": [t.last_error for t in decided],
        "o_attempts_delta": [t.attempts_delta for t in decided],
        "o_max_attempts_delta": [t.max_attempts_delta for t in decided],
        "o_fence_status": [JobStatus.RUNNING.value] * len(outcomes),
        "o_fence_worker": [o.fence_worker or worker_id for o in outcomes],
    }


# The worker's declaration of the jobs it may send to a child (Worker.may_start), written in its
# round trip so that no job goes to a child before the declaration naming it is durable: the ids
# it declares (``declare``), plus the first ``declare_fresh`` of the rows this statement claims
# that aren't on their last attempt (the next to be sent). A job on its last attempt the worker
# declares itself, one per child (worker/ledger.py). They are taken from ``claimable`` (attempts
# as they were before the claim) in the order its index walk found them, the claim order, with no
# sort. With ``declaring`` false the row is left as it is. The 'declared' row in the result says
# the row was updated: not when it is gone, nor when a heartbeat wrote it again after a rescuer
# deleted it (with no declaration: see Ledger._row_gone).
_FRESH = "fresh AS (SELECT id FROM claimable WHERE known AND spent + 1 < allowed LIMIT %(declare_fresh)s)"


def _declare_cte(handed: bool) -> str:
    # A handed-over job (claims._HANDOFF) is the first one sent: declared with the fresh ones.
    also = (" || COALESCE((SELECT jsonb_agg(id) FROM handed WHERE attempts < max_attempts), '[]'::jsonb)"
            if handed else "")
    return (
        f"declared AS (UPDATE {WORKER_TABLE} SET may_start = to_jsonb(%(declare)b::bigint[]) "
        f"|| COALESCE((SELECT jsonb_agg(id) FROM fresh), '[]'::jsonb){also} "
        f"WHERE worker_id = %(worker_id)s AND may_start IS NOT NULL AND %(declaring)b RETURNING 1)"
    )


# The rows a round trip returns for its claim (what sync() reads): each claimed job with the
# claim's columns and whether it is fresh (_FRESH_AT), whether the declaration landed, and the
# rows set aside.
_CLAIM_ROWS = (
    "SELECT 'claimed', id, name::text, args::text, kwargs::text, queue::text, attempts, "
    "max_attempts, timeout, attempts_at_retry, traceparent::text, tracestate, downstream_version, "
    "id IN (SELECT id FROM fresh) FROM claimed "
    "UNION ALL SELECT 'declared', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
    "FROM declared "
    "UNION ALL SELECT 'parked', id, name::text, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
    "FROM parked"
)


# The claim as both round trips write it, in CTEs: the ready rows it walks (with the attempts they
# had, for _FRESH), the rows it sets aside (_PARK), the rows it claims, and the fresh ones among them.
def _claim_ctes(filter_queues: bool) -> str:
    return (
        f"claimable AS ({_claimable_sql(filter_queues, 'id, attempts AS spent, max_attempts AS allowed')}), "
        f"{_PARK}, claimed AS ({_CLAIM_UPDATE}), {_FRESH}"
    )


# A worker's round trip: the outcomes of the jobs that finished since the last one, the claim of
# the next jobs and the declaration of those it may start next, in one statement and one commit.
# Both job UPDATEs see the same snapshot and touch disjoint rows (outcomes only running rows, the
# claim only queued or retrying ones). The claim's rows come first in the result: PostgreSQL runs
# the branches of a UNION ALL in order, so the claim (which never waits: SKIP LOCKED) is done
# before the workflow steps lock the downstream rows, and those locks, which another worker
# finishing members of the same fan-in waits on, are held only for the end of the statement and
# its commit. Bench I, 10 runs each: a fan-in of 10,000 drained at a median 17,700 jobs/s
# (16,300-20,500) against 16,600 (16,100-18,400) with the claim last.
def _sync_sql_pg(filter_queues: bool, handoff: str = "", *, workflows: bool = True) -> str:
    handed = (
        " UNION ALL SELECT 'handed:' || concurrency_key, id, name::text, args::text, kwargs::text, "
        "queue::text, attempts, max_attempts, timeout, attempts_at_retry, traceparent::text, tracestate, "
        "downstream_version, %(declaring)b AND attempts < max_attempts FROM handed"
        if handoff else ""
    )
    if workflows:
        steps, check = f"RECURSIVE done AS ({OUTCOME_UPDATE}), {_FLOW}, ", _FLOW_CHECK
        released = (f" UNION ALL SELECT 'released', id, NULL::text, NULL::text, {_AFTER_ARGS} FROM released "
                    f"WHERE status = '{JobStatus.QUEUED.value}'")
    else:
        steps, check, released = f"done AS ({OUTCOME_UPDATE}), ", _NOTHING_DOWNSTREAM, ""
    return (
        f"WITH {steps}{_claim_ctes(filter_queues)}, {handoff}{_declare_cte(bool(handoff))} "
        f"{_CLAIM_ROWS}{handed} "
        f"UNION ALL SELECT 'done', id, status::text, {_DONE_ANNOUNCED}, {_AFTER_ARGS} FROM done WHERE {check}"
        f"{released}"
    )


# The columns after the claim's arguments, in a row of the round trip that isn't a claimed job.
_AFTER_ARGS = (
    "NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::double precision, NULL::integer, "
    "NULL::text, NULL::text, NULL::integer, NULL::boolean"
)
# The round trip without the workflow steps, for outcomes of jobs that had nothing downstream at
# their claim (nearly all): those steps have nothing to do then, but each of their UPDATEs opens
# every index of the job table all the same, which was a third of the statement's fixed cost.
# Should one of these jobs have jobs downstream after all (an enqueue after it committed while it
# ran: its outcome's UPDATE returns the newest row), the statement fails whole, and sync() runs
# the one with the steps instead (run_outcome_statement).
DOWNSTREAM_MARK = "django_jobs: a job whose outcome this writes has jobs downstream"
_NOTHING_DOWNSTREAM = (
    f"(SELECT CASE WHEN count(*) = 0 THEN true ELSE ('{DOWNSTREAM_MARK}: ' || count(*))::boolean END "
    f"FROM done WHERE downstream_version > 0)"
)



# The round trip with no outcome to write: the claim and the declaration alone. The statement
# above costs PostgreSQL ~0.3 ms more than this one with its outcome and workflow steps empty
# (measured: a claim of one job 1.08 against 0.79 ms), which a worker woken for a new job would
# pay between the enqueue's commit and the job's first line.
def _claim_only_sql_pg(filter_queues: bool) -> str:
    return (
        f"WITH {_claim_ctes(filter_queues)}, {_declare_cte(False)} {_CLAIM_ROWS}"
    )


_CLAIM_ONLY_PG = {True: _claim_only_sql_pg(True), False: _claim_only_sql_pg(False)}
# Where a row of the round trip says whether the job is fresh: after its kind and the claim's columns.
_FRESH_AT = 1 + len(CLAIM_COLUMNS)


# A slot handed over: when a job whose only limit is a concurrency key ends, the same statement
# that writes its outcome starts the next ready job of that key and name, in claim order. The
# running count of the key doesn't change (one leaves, one comes, in one commit), so no gate lock
# is needed: a gated claim counting the key under its lock sees both or neither. It is done only
# while the key's running count (the ending job included, counted once for the statement in
# `busy`) is within the limit, so a limit an operator lowered still takes effect as jobs end. Only PostgreSQL; the worker asks for it per
# ending job (db/gates.py marks the jobs it may ask it for).
_HANDOFF = (
    f"handover AS (SELECT h.key, h.name, h.queue, h.lim FROM unnest(%(h_id)s::bigint[], %(h_key)s::text[], "
    f"%(h_name)s::text[], %(h_queue)s::text[], %(h_limit)s::integer[]) AS h(id, key, name, queue, lim) "
    f"JOIN done ON done.id = h.id AND done.status <> '{JobStatus.RUNNING.value}'), "
    f"busy AS (SELECT concurrency_key AS key, count(*) AS n FROM {TABLE} "
    f"WHERE status = '{JobStatus.RUNNING.value}' AND concurrency_key = ANY(%(h_key)s::text[]) GROUP BY concurrency_key), "
    f"successors AS (SELECT DISTINCT s.id FROM handover LEFT JOIN busy ON busy.key = handover.key "
    f"CROSS JOIN LATERAL ("
    f"SELECT id FROM {TABLE} WHERE COALESCE(busy.n, 0) <= handover.lim "
    f"AND {READY_SQL} AND {KEYED_SQL} AND {KEY_EXPR} = handover.key "
    f"AND concurrency_key = handover.key AND rate_key IS NULL AND name = handover.name "
    f"AND queue = handover.queue AND run_at <= %(now)s "
    f"ORDER BY priority DESC, run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) AS s), "
    f"handed AS (UPDATE {TABLE} {CLAIM_SET} "
    f"FROM successors WHERE {TABLE}.id = successors.id "
    f"RETURNING {', '.join(f'{TABLE}.{c}' for c in CLAIM_COLUMNS)}, {TABLE}.concurrency_key), "
)


# Every round trip with outcomes, by (filter_queues, handing a slot over, with the workflow steps).
_SYNC_PG = {
    (queues, handing, steps): _sync_sql_pg(queues, _HANDOFF if handing else "", workflows=steps)
    for queues in (True, False) for handing in (True, False) for steps in (True, False)
}


@dataclass(slots=True)
class Handoff:
    """A job whose slot may pass to the next job of its concurrency key when its outcome is written."""

    job_id: int
    key: str
    name: str
    queue: str
    limit: int


def sync_sql(*, filter_queues: bool = False, outcomes: bool = True, downstream: bool = True) -> str:
    """The text of the statement a worker runs each round trip (for EXPLAIN): with outcomes to
    write (with the workflow steps, or ``downstream=False`` without), or (``outcomes=False``) the
    claim alone."""
    if not outcomes:
        return _CLAIM_ONLY_PG[filter_queues]
    return _SYNC_PG[filter_queues, False, downstream]


@dataclass(slots=True)
class Synced:
    """What a round trip did: {job id: status written}, the claimed rows, the (id, name) of the
    rows it set aside because their name isn't among the worker's (see _PARK), and the ids of the
    claimed rows its declaration named (None: no declaration was written, for none was asked or
    the worker's row is gone; see _declare_cte)."""

    written: dict[int, str]
    claimed: list[dict[str, Any]]
    parked: list[tuple[int, str]]
    fresh: set[int] | None = None
    #: Jobs the outcomes queued (workflows): the claim in the same statement couldn't see them.
    released: list[int] = field(default_factory=list)


def sync(
    using: str,
    *,
    worker_id: str,
    outcomes: Sequence[OutcomeWrite],
    limit: int,
    now: datetime,
    names: Sequence[str],
    queues: Sequence[str] = (),
    paused_queues: Sequence[str] = (),
    paused_names: Sequence[str] = (),
    handoffs: Sequence[Handoff] = (),
    declare: Declaration | None = None,
    downstream: bool = True,
) -> Synced:
    """Write ``outcomes``, claim up to ``limit`` jobs named in ``names`` and write ``declare``, in
    one round trip.

    ``downstream=False`` says none of the outcomes' jobs had jobs downstream at its claim (a
    claimed row's ``downstream``): the statement then leaves out the workflow steps, and runs
    again with them should one have some by now (see _NOTHING_DOWNSTREAM).

    The ids of jobs those outcomes queued (the last upstream job of each succeeded: see _FLOW)
    come back in ``released``: the claim in the same statement can't see them yet.
    With ``handoffs``, a slot freed by one of those outcomes goes to the next job of its key (see
    _HANDOFF); those jobs come last among the claimed rows, marked ``gated``.
    """
    if connections[using].vendor != "postgresql":
        taken, aside = claim_and_park(
            using, worker_id=worker_id, limit=limit, now=now, queues=queues, paused_queues=paused_queues,
            paused_names=paused_names, names=names,
        ) if limit > 0 else ([], [])
        done = record_outcomes(using, worker_id, outcomes)
        return Synced(done, taken, aside, _declare_sqlite(using, worker_id, declare, taken))
    params = outcome_params(worker_id, outcomes)
    params.update(now=now, queues=list(queues), paused_queues=list(paused_queues),
                  paused_names=list(paused_names), limit=max(limit, 0), names=list(names),
                  declaring=declare is not None, declare=list(declare.ids) if declare else [],
                  declare_fresh=declare.fresh if declare else 0)
    handing = bool(handoffs)
    statement = _SYNC_PG[bool(queues), handing, downstream] if outcomes or handing else _CLAIM_ONLY_PG[bool(queues)]
    if handing:
        params.update(
            h_id=[h.job_id for h in handoffs], h_key=[h.key for h in handoffs], h_name=[h.name for h in handoffs],
            h_queue=[h.queue for h in handoffs], h_limit=[h.limit for h in handoffs],
        )
    written: dict[int, str] = {}
    rows: list[tuple[Any, ...]] = []
    handed: list[tuple[Any, ...]] = []
    keys: list[str] = []
    parked: list[tuple[int, str]] = []
    released: list[int] = []
    fresh: set[int] = set()
    landed = False
    with_steps = _SYNC_PG[bool(queues), handing, True]
    for row in run_outcome_statement(using, statement, params, worker=True, with_steps=with_steps):
        kind = row[0]
        if kind == "done":
            written[row[1]] = row[2]
            continue
        if kind == "declared":
            landed = True
            continue
        if row[_FRESH_AT]:
            fresh.add(row[1])
        if kind == "claimed":
            rows.append(row[1:])
        elif kind == "released":
            released.append(row[1])
        elif kind == "parked":
            parked.append((row[1], row[2]))
        else:
            handed.append(row[1:])
            keys.append(kind.removeprefix("handed:"))
    claimed = claimed_rows(rows)
    for job, key in zip(claimed_rows(handed), keys):
        job["gated"] = True
        job["handoff"] = key  # and so on: its own slot may pass on in turn
        claimed.append(job)
    return Synced(written, claimed, parked, fresh if landed else None, released)


@dataclass(slots=True)
class Declaration:
    """What a worker's round trip declares it may send to a child (see _declare_cte): the ``ids``
    it names, plus the first ``fresh`` rows the same statement claims."""

    ids: Sequence[int]
    fresh: int


# SQLite has no round trip to ride along with: the declaration is its own statement, after the
# claim and before any of it is sent.
DECLARE = f"UPDATE {WORKER_TABLE} SET may_start = %s WHERE worker_id = %s AND may_start IS NOT NULL"


def _declare_sqlite(
    using: str, worker_id: str, declare: Declaration | None, claimed: list[dict[str, Any]]
) -> set[int] | None:
    if declare is None:
        return None
    fresh = [r["id"] for r in claimed if r["attempt"] < r["max_attempts"]][: declare.fresh]
    with connections[using].cursor() as cursor:
        cursor.execute(DECLARE, [json.dumps([*declare.ids, *fresh]), worker_id])
        return set(fresh) if cursor.rowcount else None


def record_outcomes(using: str, worker_id: str, outcomes: Sequence[OutcomeWrite]) -> dict[int, str]:
    """Write attempts' outcomes, fenced by their claims; return {job id: status written}.

    A job missing from the result had lost its claim (it was rescued), and nothing was written.
    """
    if not outcomes:
        return {}
    if connections[using].vendor != "postgresql":
        return _record_outcomes_sqlite(using, worker_id, outcomes)
    return {row[0]: row[1] for row in run_outcome_statement(using, OUTCOME_WRITE, outcome_params(worker_id, outcomes))}


def run_outcome_statement(
    using: str, sql: str, params: Any, *, worker: bool = False, with_steps: str | None = None
) -> list[tuple[Any, ...]]:
    """Run a statement that writes outcomes (with_workflow_steps()); again (a few times) when its
    workflow check found that a transaction it waited on added or re-armed jobs it couldn't see
    (see _FLOW), or when it lost a deadlock. A statement without the workflow steps that found a
    job with jobs downstream (_NOTHING_DOWNSTREAM) runs again as ``with_steps``.

    Each time it runs with a new snapshot, taken after that transaction's commit. Inside a
    transaction (rescue) each run has a savepoint, so the failed one leaves the transaction usable.
    """
    wrapper = connections[using]
    for tries_left in range(4, -1, -1):
        try:
            if wrapper.in_atomic_block:
                with transaction.atomic(using=using):
                    return run_prepared(using, sql, params, worker=worker)
            return run_prepared(using, sql, params, worker=worker)
        except DataError as exc:
            if with_steps is not None and DOWNSTREAM_MARK in str(exc):
                sql, with_steps = with_steps, None
                continue
            if STALE_MARK not in str(exc) or not tries_left:
                raise
        except OperationalError as exc:
            # A deadlock with an operator's verb (which locks in its own order): the statement
            # was rolled back whole, and runs again.
            if not is_deadlock(exc) or not tries_left:
                raise
    raise AssertionError("unreachable")


def _record_outcomes_sqlite(using: str, worker_id: str, outcomes: Sequence[OutcomeWrite]) -> dict[int, str]:
    connection = connections[using]
    adapt = connection.ops.adapt_datetimefield_value
    sql = (
        f"UPDATE {TABLE} SET "
        f"status = CASE WHEN stop_requested_at IS NULL THEN %s ELSE '{JobStatus.STOPPED.value}' END, "
        f"worker_id = '', "
        f"finished_at = CASE WHEN stop_requested_at IS NULL THEN %s ELSE %s END, "
        f"history = json_insert(history, '$[#]', CASE WHEN stop_requested_at IS NULL "
        f"OR json_extract(%s, '$.outcome') = '{_STOPPED}' THEN json(%s) ELSE json_set(%s, "
        f"'$.outcome', '{_STOPPED}', '$.ended_as', json_extract(%s, '$.outcome'), "
        f"'$.reason', '{STOPPED_ON_REQUEST}') END), "
        f"run_at = COALESCE(%s, run_at), "
        f"result = CASE WHEN %s THEN %s ELSE result END, "
        f"last_error = CASE WHEN stop_requested_at IS NOT NULL THEN '{STOPPED_ON_REQUEST}' "
        f"ELSE COALESCE(%s, last_error) END, "
        f"attempts = attempts + CASE WHEN stop_requested_at IS NULL THEN %s ELSE 0 END, "
        f"max_attempts = max_attempts + %s "
        f"WHERE id = %s AND status = '{JobStatus.RUNNING.value}' AND attempts = %s AND worker_id = %s "
        f"RETURNING id, status"
    )
    written: dict[int, str] = {}
    with connection.cursor() as cursor:
        for o in outcomes:
            t = o.transition
            cursor.execute(sql, [
                t.status.value, adapt(o.finished_at), adapt(o.ended_at), *[json.dumps(t.history_entry)] * 4,
                adapt(t.run_at), t.set_result, dump_json(t.result) if t.set_result else None,
                t.last_error, t.attempts_delta, t.max_attempts_delta, o.job_id, o.attempt,
                o.fence_worker or worker_id,
            ])
            row = cursor.fetchone()
            if row:
                written[row[0]] = row[1]
    return written


def record_outcome(using: str, worker_id: str, outcome: OutcomeWrite) -> str | None:
    """Write one outcome (see record_outcomes); return its status, or None if the claim was lost."""
    return record_outcomes(using, worker_id, [outcome]).get(outcome.job_id)


# Which of a worker's jobs someone asked to stop: the heartbeat's question, by primary key.
STOP_REQUESTED = f"SELECT id FROM {TABLE} WHERE id IN %s AND stop_requested_at IS NOT NULL"
# For this transaction only: give up on a lock after this long (the heartbeat must not wait
# behind a migration's lock on the job table; it asks again at the next beat).
LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %s, true)"
# What the server process behind a connection is doing: a statement waiting for a lock answers
# once the lock goes; an idle or vanished one never will.
BACKEND_STATE = "SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s"
# Of (id, attempt) pairs, those whose last history entry is this worker's own for that attempt
# (a rescuer's has rescued_by): outcomes a lost reply hid, already written.
# The last attempt's entry is the last one without an "event" key: an operator's verb (retry,
# stop, dead-letter) may have added its own entry after it since.
OUTCOMES_WRITTEN = (
    f"SELECT j.id, j.status FROM {TABLE} AS j "
    f"JOIN unnest(%s::bigint[], %s::integer[]) AS v(id, attempt) ON j.id = v.id "
    f"CROSS JOIN LATERAL (SELECT h.e FROM jsonb_array_elements(j.history) WITH ORDINALITY AS h(e, i) "
    f"WHERE NOT h.e ? 'event' ORDER BY h.i DESC LIMIT 1) AS last "
    f"WHERE last.e ->> 'worker' = %s AND (last.e ->> 'attempt')::integer = v.attempt "
    f"AND NOT (last.e ? 'rescued_by')"
)
# A worker's running rows whose (id, attempt) it doesn't hold: rows a claim committed for it but
# whose reply never reached it. The held pairs come as two arrays (one parameter each however
# many there are).
UNHELD = (
    f"SELECT id, name, attempts, max_attempts FROM {TABLE} "
    f"WHERE status = '{JobStatus.RUNNING.value}' AND worker_id = %s AND NOT EXISTS ("
    f"SELECT 1 FROM unnest(%s::bigint[], %s::integer[]) AS h(id, attempt) "
    f"WHERE h.id = {TABLE}.id AND h.attempt = {TABLE}.attempts)"
)


def stop_requested(using: str, job_ids: Sequence[int], *, lock_timeout: float | None = None) -> list[int]:
    """Which of these running jobs someone asked to stop.

    With ``lock_timeout`` (seconds), give up with an error is_lock_timeout() recognises rather
    than wait longer for a lock on the job table (the heartbeat must not hang behind one).
    """
    if not job_ids:
        return []
    sql = STOP_REQUESTED.replace("IN %s", f"IN {placeholders(job_ids)}")
    connection = connections[using]
    if lock_timeout is None or connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, list(job_ids))
            return [r[0] for r in cursor.fetchall()]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(LOCK_TIMEOUT, [f"{int(lock_timeout * 1000)}ms"])
        cursor.execute(sql, list(job_ids))
        return [r[0] for r in cursor.fetchall()]


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether a database error is PostgreSQL's lock_timeout running out (SQLSTATE 55P03)."""
    return getattr(exc.__cause__, "sqlstate", None) == "55P03"


def waiting_on_lock(using: str, pid: int) -> bool:
    """Whether the server process ``pid`` is running a statement that waits for a lock.

    Anything else (idle, gone, or busy some other way) means the statement its client waits for
    may never answer: a lost reply, not a late one.
    """
    with connections[using].cursor() as cursor:
        cursor.execute(BACKEND_STATE, [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == "active" and row[1] == "Lock"


def unheld(using: str, worker_id: str, held: Iterable[tuple[int, int]]) -> list[tuple[int, str, int, int]]:
    """The running rows claimed for ``worker_id`` whose (id, attempt) it doesn't hold, as
    (id, name, attempt, max_attempts): a claim committed them but its reply never reached it."""
    connection = connections[using]
    held = sorted(held)
    params: list[Any]
    if connection.vendor == "postgresql":
        sql, params = UNHELD, [worker_id, [h[0] for h in held], [h[1] for h in held]]
    else:  # no arrays in SQLite: the pairs spelled out
        pairs = " OR ".join(["(id = %s AND attempts = %s)"] * len(held))
        sql = UNHELD[: UNHELD.index(" AND NOT EXISTS")] + (f" AND NOT ({pairs})" if held else "")
        params = [worker_id, *(value for pair in held for value in pair)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(r) for r in cursor.fetchall()]


def outcomes_written(using: str, worker_id: str, attempts: Sequence[tuple[int, int]]) -> dict[int, str]:
    """Of these (job id, attempt) pairs, the ones whose outcome this worker already wrote (the
    last attempt's history entry is its own for that attempt, not a rescuer's): {job id: status}.

    For outcomes re-sent after a lost reply: the fence refuses the second write, which doesn't
    mean someone else took the job.
    """
    if not attempts or connections[using].vendor != "postgresql":
        return {}
    with connections[using].cursor() as cursor:
        cursor.execute(OUTCOMES_WRITTEN, [[a[0] for a in attempts], [a[1] for a in attempts], worker_id])
        return {r[0]: r[1] for r in cursor.fetchall()}


# Every other ready job of names a claim just set aside (_PARK takes only what its LIMIT reached):
# one walk of django_jobs_ready_idx, so that 10,000 jobs of a new name queued ahead cost the worker
# that doesn't know it one statement more, not one claim per LIMIT of them.
PARK_ALL = (
    f"WITH found AS (SELECT id FROM {TABLE} WHERE {READY_SQL} AND {PLAIN_SQL} "
    f"AND name = ANY(%(names)s::text[]) FOR UPDATE SKIP LOCKED) "
    f"UPDATE {TABLE} SET parked_at = %(now)s FROM found WHERE {TABLE}.id = found.id RETURNING {TABLE}.name"
)


def park_all(using: str, names: Sequence[str], now: datetime) -> dict[str, int]:
    """Set aside every ready job of ``names`` (see PARK_ALL); return how many of each name."""
    return _set_parked(using, names, now, PARK_ALL, f"{READY_SQL} AND {PLAIN_SQL}")


def _set_parked(
    using: str, names: Sequence[str], parked_at: datetime | None, statement: str, where: str
) -> dict[str, int]:
    """Set ``parked_at`` on the rows ``where`` holds of ``names`` (PostgreSQL: ``statement``, which
    returns each row's name); return how many of each name."""
    counts: dict[str, int] = {}
    if not names:
        return counts
    connection = connections[using]
    if connection.vendor != "postgresql":
        where = f"WHERE {where} AND name IN {placeholders(names)}"
        value = connection.ops.adapt_datetimefield_value(parked_at) if parked_at else None
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute(f"SELECT name, count(*) FROM {TABLE} {where} GROUP BY name", list(names))
            counts = dict(cursor.fetchall())
            cursor.execute(f"UPDATE {TABLE} SET parked_at = %s {where}", [value, *names])
        return counts
    for (name,) in run_prepared(using, statement, {"names": list(names), "now": parked_at}, worker=True):
        counts[name] = counts.get(name, 0) + 1
    return counts


# Jobs other workers set aside because they didn't know the name (_PARK), back into the claim's
# indexes, for names the calling worker knows. A probe of django_jobs_parked_idx per name, which
# is empty but during a deploy; SKIP LOCKED so it never waits behind a claim or the sweep that
# ends jobs nobody knows.
UNPARK = (
    f"WITH found AS (SELECT id FROM {TABLE} WHERE {READY_SQL} AND {PARKED_SQL} "
    f"AND name = ANY(%(names)s::text[]) FOR UPDATE SKIP LOCKED) "
    f"UPDATE {TABLE} SET parked_at = NULL FROM found WHERE {TABLE}.id = found.id RETURNING {TABLE}.name"
)


def unpark(using: str, names: Sequence[str]) -> dict[str, int]:
    """Put back the parked ready jobs of ``names``; return how many of each name."""
    return _set_parked(using, names, None, UNPARK, f"{READY_SQL} AND {PARKED_SQL}")


def lost_before(using: str, job_id: int) -> int:
    """How many times a job was lost so far (for MAX_LOST, when its child died running it)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {lost_count_sql(connection.vendor, 'j')} FROM {TABLE} AS j WHERE j.id = %s", [job_id])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def paused(using: str) -> tuple[list[str], list[str]]:
    """The paused queues and job names (a tiny table, read on each claim loop)."""
    queues: list[str] = []
    names: list[str] = []
    for kind, value in Pause.objects.using(using).values_list("kind", "value"):
        (queues if kind == Pause.Kind.QUEUE else names).append(value)
    return queues, names


def next_due(using: str, queues: Sequence[str], *, after: datetime, until: datetime) -> datetime | None:
    """When the first waiting job of ``queues`` (every queue when empty) falls due after ``after``,
    if it does by ``until``: what a burst worker with ``--due-within`` waits for."""
    waiting = Job.objects.using(using).filter(status__in=READY_STATUSES, run_at__gt=after, run_at__lte=until)
    if queues:
        waiting = waiting.filter(queue__in=list(queues))
    due: datetime | None = waiting.aggregate(due=Min("run_at"))["due"]
    return due
