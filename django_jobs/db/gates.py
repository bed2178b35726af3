"""The gated claim: jobs a concurrency limit, a rate or a sequence may hold back.

The plain claim (claims.py) never sees these rows: they are outside django_jobs_ready_idx. The
gated claim takes them in four statements, the last three in one transaction:

1. CANDIDATES reads, without locking, the first ready jobs of each key (a loose index scan: one
   probe per distinct key, so a key with 100,000 held jobs costs one probe, not 100,000 rows), the
   head of each sequence, and the first jobs of queues and names an operator or the settings limit.
2. TRY_LOCK_GATES takes a transaction-level advisory lock per gate of the candidates, without
   waiting: a gate another worker holds is passed over, as SKIP LOCKED passes over rows, so two
   workers never count the same gate at once and never queue behind each other. Transaction-level,
   so it works behind PgBouncer in transaction mode and can't outlive a crashed worker's session.
3. USAGE, a new statement and so (in READ COMMITTED) a new snapshot taken after the locks,
   reads what every earlier holder committed: the running jobs per gate, the starts in each
   rate's window, each sequence's head, and the database's clock. flow.admit() decides;
   CLAIM_GATED marks exactly those running and logs the starts of rate-limited ones, with that
   clock (monotonic across holders of a lock, so a rate's window is exact even when workers'
   clocks disagree).

The counts come from the rows themselves (what is running is what holds a slot), so a job that
ends by any path (an outcome, rescue, an operator's stop) frees its slot with nothing to undo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from .. import flow
from ..conf import jobs_settings
from ..models import READY_STATUSES, SEQUENCE_STATUSES, Job, JobStatus, Limit, Start
from ..registry import registry
from .claims import CLAIM_COLUMNS, CLAIM_SET, claimed_rows
from .connection import run_prepared
from .tables import KEY_EXPR, KEYED_SQL, PLAIN_SQL, READY_SQL, TABLE, WORKER_TABLE, status_in

START_TABLE = Start._meta.db_table
_SEQUENCE_SQL = f"sequence_key IS NOT NULL AND {status_in(SEQUENCE_STATUSES)}"
# run_at as whole microseconds since the epoch: Django's loader of timestamptz values parses each
# one in Python (~12 µs), which made loading a claim's 200 candidates cost more than finding them.
_CANDIDATE_COLUMNS = (
    "id, name, queue, priority, (extract(epoch FROM run_at) * 1000000)::bigint AS run_at_us, "
    "concurrency_key, rate_key, sequence_key, status"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Distinct keys (and sequences) one gated claim looks at; the next claim goes on from the last.
MAX_KEYS = 256


def _filters(prefix: str = "") -> str:
    # The worker's queues (none: every queue) and the paused queues and names.
    return (
        f"AND (cardinality(%(queues)s::text[]) = 0 OR {prefix}queue = ANY(%(queues)s::text[])) "
        f"AND {prefix}queue <> ALL(%(paused_queues)s::text[]) AND {prefix}name <> ALL(%(paused_names)s::text[])"
    )


# Keys: a recursive loose index scan of django_jobs_keyed_idx gives each distinct key after the
# cursor in one probe, then each key's first ready jobs in claim order. Sequences: the same walk
# over django_jobs_sequence_idx, and each sequence's head (its first job not finished, or dead and
# blocking: dead jobs of names with sequence_on_dead="continue" are stepped over). Limited queues
# and names without keys: the first ready jobs among them, from django_jobs_ready_idx.
# Workers run it as a prepared statement with a generic plan, where a filter on an empty array
# still costs per row and the limited branch walks the ready index for nothing: so each worker
# prepares only the shape it needs (candidates_sql), without the filters it doesn't use.
def candidates_sql(filtered: bool = True, limited: bool = True) -> str:
    """The candidates statement: with the worker's queue and pause filters or not, and with the
    branch for limited queues and names or not."""
    filters = _filters() if filtered else ""
    sql = (
        f"WITH RECURSIVE keys(k, n) AS ("
        f"SELECT (SELECT {KEY_EXPR} FROM {TABLE} WHERE {READY_SQL} AND {KEYED_SQL} AND {KEY_EXPR} > %(key_cursor)s "
        f"ORDER BY {KEY_EXPR} LIMIT 1), 1 "
        f"UNION ALL SELECT (SELECT {KEY_EXPR} FROM {TABLE} WHERE {READY_SQL} AND {KEYED_SQL} AND {KEY_EXPR} > keys.k "
        f"ORDER BY {KEY_EXPR} LIMIT 1), n + 1 FROM keys WHERE keys.k IS NOT NULL AND n < {MAX_KEYS}), "
        f"sequences(k, n) AS ("
        f"SELECT (SELECT sequence_key FROM {TABLE} WHERE {_SEQUENCE_SQL} AND sequence_key > %(sequence_cursor)s "
        f"ORDER BY sequence_key LIMIT 1), 1 "
        f"UNION ALL SELECT (SELECT sequence_key FROM {TABLE} WHERE {_SEQUENCE_SQL} AND sequence_key > sequences.k "
        f"ORDER BY sequence_key LIMIT 1), n + 1 FROM sequences WHERE sequences.k IS NOT NULL AND n < {MAX_KEYS}) "
        f"SELECT 'key', keys.k, j.* FROM keys CROSS JOIN LATERAL ("
        f"SELECT {_CANDIDATE_COLUMNS} FROM {TABLE} WHERE {READY_SQL} AND {KEYED_SQL} AND {KEY_EXPR} = keys.k "
        f"AND run_at <= %(now)s {filters} ORDER BY priority DESC, run_at, id LIMIT %(per_key)s) AS j "
        f"UNION ALL SELECT 'sequence', sequences.k, h.* FROM sequences CROSS JOIN LATERAL ("
        f"SELECT {_CANDIDATE_COLUMNS} FROM {TABLE} WHERE {_SEQUENCE_SQL} AND sequence_key = sequences.k "
        f"AND NOT (status = '{JobStatus.DEAD.value}' AND name = ANY(%(continue_names)s::text[])) "
        f"ORDER BY id LIMIT 1) AS h"
    )
    if limited:
        sql += (
            f" UNION ALL (SELECT 'limited', NULL, {_CANDIDATE_COLUMNS} FROM {TABLE} WHERE {READY_SQL} AND {PLAIN_SQL} "
            f"AND run_at <= %(now)s AND (queue = ANY(%(limited_queues)s::text[]) OR name = ANY(%(limited_names)s::text[])) "
            f"{filters} ORDER BY priority DESC, run_at, id LIMIT %(per_key)s * 4)"
        )
    return sql


CANDIDATES = candidates_sql()
_CANDIDATES = {(f, lim): candidates_sql(f, lim) for f in (True, False) for lim in (True, False)}

# Tries to lock each gate for the rest of the transaction, without waiting: a gate another worker
# holds is being counted and claimed by it right now, so this claim passes over its jobs (as SKIP
# LOCKED passes over rows) instead of queueing behind it. Never waiting also means no deadlock,
# whatever order gates come in. Returns the gates it got.
TRY_LOCK_GATES = "SELECT g FROM unnest(%(gates)s::text[]) AS g WHERE pg_try_advisory_xact_lock(hashtextextended(g, 0))"

# What the gates count, read after the locks: the clock, the running jobs that hold a concurrency
# gate or a sequence (few rows: at most the fleet's concurrency, via django_jobs_running_idx),
# the starts in each rate's window (django_jobs_start_key_idx), each sequence's head, and the
# children of the live workers that share this worker's queues (flow.fair_share).
USAGE = (
    "SELECT 'now', NULL::bigint, NULL::text, NULL::text, NULL::text, statement_timestamp(), NULL::bigint "
    f"UNION ALL SELECT 'running', id, COALESCE(concurrency_key, name), queue, sequence_key, NULL, NULL "
    f"FROM {TABLE} WHERE status = '{JobStatus.RUNNING.value}' AND (COALESCE(concurrency_key, name) = ANY(%(keys)s::text[]) "
    f"OR queue = ANY(%(queues)s::text[]) OR sequence_key = ANY(%(sequences)s::text[])) "
    f"UNION ALL SELECT 'starts', NULL, w.key, NULL, NULL, min(s.started_at), count(s.key) "
    f"FROM unnest(%(start_keys)s::text[], %(periods)s::float8[]) AS w(key, period) "
    f"LEFT JOIN {START_TABLE} AS s ON s.key = w.key "
    f"AND s.started_at > statement_timestamp() - make_interval(secs => w.period) GROUP BY w.key "
    f"UNION ALL SELECT 'head', h.id, q.k, h.status, NULL, NULL, NULL "
    f"FROM unnest(%(sequences)s::text[]) AS q(k) CROSS JOIN LATERAL ("
    f"SELECT id, status FROM {TABLE} WHERE {_SEQUENCE_SQL} AND sequence_key = q.k "
    f"AND NOT (status = '{JobStatus.DEAD.value}' AND name = ANY(%(continue_names)s::text[])) "
    f"ORDER BY id LIMIT 1) AS h "
    f"UNION ALL SELECT 'fleet', NULL, NULL, NULL, NULL, NULL, sum(concurrency) FROM {WORKER_TABLE} "
    f"WHERE last_heartbeat > statement_timestamp() - make_interval(secs => %(lost_after)s) "
    f"AND (cardinality(%(worker_queues)s::text[]) = 0 OR queues = '[]'::jsonb OR queues ?| %(worker_queues)s::text[])"
)

# Marks the admitted jobs running (only if still ready: an operator may have stopped one since
# step 1) and logs a start per rate gate of each, with the clock USAGE read. The jobs of
# ``declare`` that aren't on their last attempt (the ones the worker sends to its idle children at
# once) are added to its declaration (Worker.may_start, see claims._declare_cte) in the same
# commit, so they go to a child without a round trip to declare them first; the last column says
# which were. A job on its last attempt is left to the worker's own declaration (one per child).
# Every claimed id is first taken out of the declaration: one can still be there from the job's
# earlier attempt here, if its outcome was written without a new declaration (Ledger.flush), and
# rescue would take this attempt, which never started, for one that may have (a last one: dead).
_DECLARABLE = "id = ANY(%(declare)s::bigint[]) AND attempts < max_attempts"
CLAIM_GATED = (
    f"WITH claimed AS (UPDATE {TABLE} {CLAIM_SET} "
    f"WHERE id = ANY(%(ids)s::bigint[]) AND {status_in(READY_STATUSES)} "
    f"RETURNING {', '.join(CLAIM_COLUMNS)}), "
    f"started AS (INSERT INTO {START_TABLE} (key, started_at) SELECT s.key, %(now)s "
    f"FROM unnest(%(start_ids)s::bigint[], %(start_keys)s::text[]) AS s(id, key) "
    f"WHERE s.id IN (SELECT id FROM claimed)), "
    f"declared AS (UPDATE {WORKER_TABLE} SET may_start = "
    f"COALESCE((SELECT jsonb_agg(e) FROM jsonb_array_elements(may_start) AS e "
    f"WHERE e NOT IN (SELECT to_jsonb(id) FROM claimed)), '[]'::jsonb) || "
    f"to_jsonb(ARRAY(SELECT id FROM claimed WHERE {_DECLARABLE})) "
    f"WHERE worker_id = %(worker_id)s AND jsonb_typeof(may_start) = 'array' "
    f"AND EXISTS (SELECT 1 FROM claimed) RETURNING 1) "
    f"SELECT {', '.join(CLAIM_COLUMNS)}, {_DECLARABLE} AND EXISTS (SELECT 1 FROM declared) FROM claimed"
)

# Starts older than the longest period a rate can have are never counted again.
PRUNE_STARTS = f"DELETE FROM {START_TABLE} WHERE started_at < %s"


def limits_in_effect(using: str) -> flow.Limits:
    """Code's limits with DJANGO_JOBS["QUEUES"] and the operators' Limit rows over them."""
    rows = Limit.objects.using(using).values_list("kind", "value", "concurrency", "rate")
    return flow.merge_limits(registry.limits(), jobs_settings.QUEUES or {}, list(rows))


def any_gated(limits: flow.Limits) -> bool:
    """Whether any job can be held by a gate: limits are set, or a registered job has a key."""
    return bool(limits) or any(definition.keyed for definition in registry)


@dataclass
class GatedClaim:
    """What one gated claim took, and what it learned for the next one."""

    rows: list[dict[str, Any]]
    #: The earliest time a rate lets a held job start (None: none waits on a rate).
    next_start: datetime | None = None
    #: Where the next claim's walk over keys and sequences starts ("" from the beginning).
    key_cursor: str = ""
    sequence_cursor: str = ""
    #: Another worker held some of the gates wanted: look again shortly.
    contended: bool = False
    #: How many slots this worker may hold (flow.fair_share; None: no share was asked for).
    share: int | None = None
    #: Other workers hold more than their shares of the slots this one wanted: look again shortly.
    crowded: bool = False
    #: Jobs held by a rate alone were left for want of idle children: claim again once one is free.
    rate_bound: bool = False
    #: Jobs the gates let through that another worker claimed first: look again shortly.
    lost: int = 0


def claim_gated(
    using: str, *, worker_id: str, want: int, now: datetime, limits: flow.Limits, queues: Sequence[str] = (),
    paused_queues: Sequence[str] = (), paused_names: Sequence[str] = (), key_cursor: str = "",
    sequence_cursor: str = "", rate_want: int | None = None, children: int | None = None, held: int = 0,
    declare: int = 0,
) -> GatedClaim:
    """Claim up to ``want`` jobs that gates may hold (of them at most ``rate_want`` held by a
    rate), never more than every gate allows. ``declare`` of them (those a rate let through
    first, then in claim order) are added to the worker's declaration (see CLAIM_GATED): their
    rows come back ``declared``.

    For a worker with ``children`` that holds ``held`` slots already, no more than its fair share
    of the slots (flow.fair_share) beyond the ``rate_want`` jobs its idle children can start now:
    those it always may take. None: no share (a claim made outside a worker). A worker's claim
    of nothing (``want`` 0) still reads its share."""
    if want <= 0 and children is None:  # (a worker's claim of nothing still learns its share)
        return GatedClaim([], key_cursor=key_cursor, sequence_cursor=sequence_cursor)
    if connections[using].vendor != "postgresql":
        # Flow control is PostgreSQL's (advisory locks, arrays): elsewhere limited jobs wait, and
        # the system check django_jobs.W302 says so at startup.
        return GatedClaim([], key_cursor=key_cursor, sequence_cursor=sequence_cursor)
    params: dict[str, Any] = {
        "now": now, "queues": list(queues), "paused_queues": list(paused_queues),
        "paused_names": list(paused_names), "key_cursor": key_cursor, "sequence_cursor": sequence_cursor,
        "continue_names": sorted(limits.sequence_continue), "per_key": max(1, min(want, limits.most_per_key(rate_want if rate_want is not None else want))),
        "limited_queues": limits.limited_queues, "limited_names": limits.limited_names,
    }
    shape = (bool(queues or paused_queues or paused_names), bool(limits.limited_queues or limits.limited_names))
    found = run_prepared(using, _CANDIDATES[shape], params, worker=True)
    candidates, keys_seen, sequences_seen = _candidates(found, now, queues, paused_queues, paused_names)
    result = GatedClaim(
        [],
        key_cursor=max(keys_seen) if len(keys_seen) >= MAX_KEYS else "",
        sequence_cursor=max(sequences_seen) if len(sequences_seen) >= MAX_KEYS else "",
    )
    if not candidates:
        return result
    gates_of = {c.id: flow.gates_of(c, limits) for c in candidates}
    by_id = {c.id: c for c in candidates}
    with transaction.atomic(using=using):
        # Every candidate's gates, tried without waiting: the ones another worker is claiming
        # right now are passed over, and counted again next time.
        wanted = sorted({g.lock_name for gates in gates_of.values() for g in gates})
        got = {row[0] for row in run_prepared(using, TRY_LOCK_GATES, {"gates": wanted}, worker=True)}
        result.contended = len(got) < len(wanted)
        locked = [c for c in candidates if all(g.lock_name in got for g in gates_of[c.id])]
        if not locked:
            return result
        # A new statement, so a new snapshot: it sees what every earlier holder of these locks
        # committed.
        usage, db_now = _usage(using, {g for c in locked for g in gates_of[c.id]}, limits, queues)
        slot_want = None
        if children is not None:
            every = [g for gates in gates_of.values() for g in gates]
            fleet = max(usage.fleet or 0, children)
            result.share = flow.fair_share(every, children, fleet)
            slot_want = max(result.share - held, rate_want or 0)
            # Other workers hold more slots of these gates than their shares add up to (one
            # claimed before this worker joined): they give them back as their jobs end, so look
            # again soon rather than at the next slot this worker frees.
            theirs = sum(len(ids) for ids in usage.running.values()) - held
            result.crowded = held < result.share and theirs > flow.fair_share(every, fleet - children, fleet)
        decision = flow.admit(locked, limits, usage, db_now, want, rate_want, slot_want)
        result.next_start = decision.next_start
        result.rate_bound = decision.rate_bound
        if decision.ids:
            starts = [(i, g.start_key) for i in decision.ids for g in gates_of[i] if g.rate]
            rated = {i for i, _ in starts}
            found = run_prepared(using, CLAIM_GATED, {
                "now": db_now, "worker_id": worker_id, "ids": decision.ids,
                "start_ids": [s[0] for s in starts], "start_keys": [s[1] for s in starts],
                # A job a rate let through first: its start is counted now.
                "declare": sorted(decision.ids, key=lambda i: i not in rated)[:declare],
            }, worker=True)
            result.rows = claimed_rows(found)
            result.lost = len(decision.ids) - len(result.rows)
            for row, (*_, declared) in zip(result.rows, found):
                row["declared"] = declared
                row["gated"] = True
                # Holds a slot (flow.SLOT_KINDS), which the worker counts against its share; a
                # job held by a rate alone holds none.
                row["slotted"] = any(g.kind in flow.SLOT_KINDS for g in gates_of[row["id"]])
                # A rate counted its start now: the worker starts it now, alone (see Pool.dispatch_buffer).
                row["rated"] = row["id"] in rated
                # Held by one concurrency key alone: its slot may pass to the key's next job in the
                # statement that writes its outcome (claims._HANDOFF).
                only = gates_of[row["id"]]
                if len(only) == 1 and only[0].kind == "concurrency" and by_key_column(by_id[row["id"]]):
                    row["handoff"] = only[0].key
    return result


def by_key_column(candidate: flow.Candidate) -> bool:
    """Whether the candidate's concurrency gate is its stored concurrency_key (not its name
    standing in for one, as under an operator's limit on a job without a key)."""
    return candidate.concurrency_key is not None and candidate.rate_key is None and candidate.sequence_key is None


def _candidates(
    found: Sequence[Sequence[Any]], now: datetime, queues: Sequence[str], paused_queues: Sequence[str],
    paused_names: Sequence[str],
) -> tuple[list[flow.Candidate], list[str], list[str]]:
    candidates: dict[int, flow.Candidate] = {}
    keys_seen: list[str] = []
    sequences_seen: list[str] = []
    for source, key, *row in found:
        (keys_seen if source == "key" else sequences_seen if source == "sequence" else []).append(key)
        job_id, name, queue, priority, run_at_us, concurrency_key, rate_key, sequence_key, status = row
        run_at = _EPOCH + timedelta(microseconds=run_at_us)
        if timezone.is_naive(now):  # USE_TZ = False: the project's clock is naive local time
            run_at = timezone.make_naive(run_at)
        if source == "sequence" and (
            status not in READY_STATUSES or run_at > now or (queues and queue not in queues)
            or queue in paused_queues or name in paused_names
        ):
            continue  # the head runs, waits, is dead, or isn't this worker's to run
        if name not in registry:
            continue
        candidates[job_id] = flow.Candidate(
            job_id, name, queue, priority, run_at, concurrency_key, rate_key, sequence_key
        )
    return list(candidates.values()), keys_seen, sequences_seen


def _usage(
    using: str, gates: set[flow.Gate], limits: flow.Limits, queues: Sequence[str] = ()
) -> tuple[flow.Usage, datetime]:
    concurrency = {g.key for g in gates if g.kind == "concurrency"}
    queue_concurrency = {g.key for g in gates if g.kind == "queue-concurrency"}
    sequences = sorted({g.key for g in gates if g.kind == "sequence"})
    rates = {g.start_key: g.rate.period for g in gates if g.rate is not None}
    rows = run_prepared(using, USAGE, {
        "keys": sorted(concurrency), "queues": sorted(queue_concurrency), "sequences": sequences,
        "start_keys": list(rates), "periods": list(rates.values()),
        "continue_names": sorted(limits.sequence_continue),
        "lost_after": jobs_settings.RESCUE_AFTER, "worker_queues": list(queues),
    }, worker=True)
    usage = flow.Usage()
    db_now: datetime | None = None
    for tag, job_id, first, second, third, moment, count in rows:
        if tag == "now":
            db_now = moment
        elif tag == "running":
            if first in concurrency:
                usage.running.setdefault(("concurrency", first), []).append(job_id)
            if second in queue_concurrency:
                usage.running.setdefault(("queue-concurrency", second), []).append(job_id)
            if third is not None:
                usage.sequence_running[third] = job_id
        elif tag == "starts":
            usage.starts[first] = (count, moment)
        elif tag == "fleet":
            usage.fleet = count
        else:
            usage.heads[first] = (job_id, second)
    assert db_now is not None
    return usage, db_now


def explain(using: str, job: Any) -> str | None:
    """What flow control holds ``job`` (a ready Job) back with right now, in one line, or None.

    Reads the gates as a claim would, without locking them: an answer for people, not a decision.
    """
    if connections[using].vendor != "postgresql":
        return None
    limits = limits_in_effect(using)
    candidate = flow.Candidate(
        job.id, job.name, job.queue, job.priority, job.run_at, job.concurrency_key, job.rate_key, job.sequence_key
    )
    gates = set(flow.gates_of(candidate, limits))
    if not gates:
        return None
    usage, db_now = _usage(using, gates, limits)
    return flow.admit([candidate], limits, usage, db_now, 1).held.get(job.id)


def blocked_by(using: str, job: Any) -> int:
    """How many later jobs of ``job``'s sequence wait behind it (for a dead job's page)."""
    if not job.sequence_key:
        return 0
    return Job.objects.using(using).filter(
        sequence_key=job.sequence_key, id__gt=job.id, status__in=READY_STATUSES
    ).count()


def prune_starts(using: str, before: datetime) -> int:
    """Delete rate starts older than ``before``; return how many."""
    with connections[using].cursor() as cursor:
        cursor.execute(PRUNE_STARTS, [before])
        return cursor.rowcount
