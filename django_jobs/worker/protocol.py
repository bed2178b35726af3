"""What the worker and its children say to each other: JSON lines over a socket pair, never pickle.

The parent sends a batch of jobs as one line, ``{"using": …, "jobs": [...]}``; the child runs
them in order and answers each with a line of its own as soon as it is done. Short jobs travel
several to a batch, so a child runs them back to back instead of waiting for the parent between
jobs, and the parent reads whatever replies have arrived in one system call.

A reply is what ``invocation.run_job()`` returned (``outcome`` and its details, read by
``lifecycle.Ended.from_reply``) plus the keys the child adds: ``id`` and ``a`` (the job's id and
attempt) and ``pid`` (the child's), by which the parent matches a reply to its job; ``t``, the
child's monotonic clock at the end of the job (CLOCK_MONOTONIC is system-wide on Linux: the next
job of the batch started then, which is what the parent's timeout for it counts from); and ``d``,
the job's duration.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from ..log import log_event

# The most arguments a batch line may carry, in bytes of JSON (each job's may be up to
# MAX_PAYLOAD_BYTES; a job over this goes alone).
BATCH_BYTES = 1 << 20

# json.dumps() with no options is this encoder's encode(): called directly, once per reply.
_encode = json.JSONEncoder().encode


@functools.lru_cache(maxsize=1024)
def _quoted(text: str) -> str:
    """A string as JSON (job names, queues and aliases repeat: each is encoded once)."""
    return json.dumps(text)


def _one_line(text: str) -> str:
    # PostgreSQL's jsonb output never spans lines, but a row written by hand into SQLite (the demo)
    # might: re-encode it compactly rather than break the line framing.
    return json.dumps(json.loads(text)) if "\n" in text else text


def payload_bytes(row: dict[str, Any]) -> int:
    """The size of a claimed row's arguments as they travel (see BATCH_BYTES)."""
    return len(row["args_json"]) + len(row["kwargs_json"])


def encode_job(job: dict[str, Any]) -> str:
    """The message for one claimed row: what run_job() reads, with the arguments as stored."""
    head = (
        f'{{"id":{int(job["id"])},"name":{_quoted(job["name"])},"queue":{_quoted(job["queue"])},'
        f'"attempt":{int(job["attempt"])},"max_attempts":{int(job["max_attempts"])},'
        f'"args":{_one_line(job["args_json"])},"kwargs":{_one_line(job["kwargs_json"])}'
    )
    if job.get("traceparent"):  # the enqueue's trace context, only when there is one (tracing.py)
        head += f',"traceparent":{_encode(job["traceparent"])},"tracestate":{_encode(job.get("tracestate"))}'
    return head + "}"


def batch_line(jobs: list[dict[str, Any]], using: str) -> bytes:
    """The line that hands ``jobs`` (claimed rows) to a child, to run on database ``using``."""
    encoded = ",".join(map(encode_job, jobs))
    return f'{{"using":{_quoted(using)},"jobs":[{encoded}]}}\n'.encode()


def read_batch(line: bytes | bytearray) -> list[dict[str, Any]]:
    """The job messages of a batch line (child side), each with the batch's database alias."""
    batch = json.loads(line)
    using = batch["using"]
    jobs: list[dict[str, Any]] = batch["jobs"]
    for message in jobs:
        message["using"] = using
    return jobs


def reply_line(reply: dict[str, Any], message: dict[str, Any], pid: int, began: float, ended: float) -> bytes:
    """The line answering ``message`` with ``reply`` (child side), stamped as the module says."""
    # The reply of a job that returned None (most of them) is encoded once; the stamps are ints
    # and finite floats, written as json writes them (repr()). ~1.9 µs a reply against ~4.2 µs for
    # encoding the stamped dict, of a child's ~15 µs per no-op job.
    head = _RETURNED_NONE_HEAD if reply == _RETURNED_NONE else _encode(reply)[:-1] + ("," if reply else "")
    return (f'{head}"id":{int(message["id"])},"a":{int(message["attempt"])},"pid":{int(pid)},'
            f'"t":{ended!r},"d":{ended - began!r}}}\n').encode()


_RETURNED_NONE = {"outcome": "succeeded", "result": None}
_RETURNED_NONE_HEAD = '{"outcome":"succeeded","result":null,'


def read_replies(complete: bytes, worker_id: str, child: int | None) -> list[dict[str, Any]]:
    """The replies in ``complete`` (whole lines, without the last newline) from ``child``.

    A line that isn't a JSON object is logged (``reply_refused``) and dropped: something other
    than the child wrote to its socket (a process the job forked).
    """
    try:
        # One parse for every reply that came in: b"[r1,r2,…]".
        replies: list[dict[str, Any]] = json.loads(b"[" + complete.replace(b"\n", b",") + b"]")
        return replies
    except ValueError:
        pass
    # Keep the lines that parse, and let the worker refuse those that aren't the child's replies.
    replies = []
    for line in complete.split(b"\n"):
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if isinstance(reply, dict):
            replies.append(reply)
        else:
            log_event("reply_refused", logging.ERROR, worker=worker_id, child=child,
                      note="a line on the child's socket that isn't a reply", line=repr(line[:100]))
    return replies
