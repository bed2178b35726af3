"""django_jobs/worker/protocol.py: the JSON lines between a worker and its children (no database)."""

from __future__ import annotations

import json

import pytest

from django_jobs.worker import protocol


def row(job_id: int, args_json: str = "[]") -> dict[str, object]:
    return {"id": job_id, "name": "tests.add", "queue": "default", "attempt": 2, "max_attempts": 3,
            "args_json": args_json, "kwargs_json": '{"x": 1}'}


def test_batch_line__is_one_line_the_child_reads_back_with_the_database_alias() -> None:
    line = protocol.batch_line([row(1, "[1, 2]"), row(2)], "other")

    assert line.endswith(b"\n") and line.count(b"\n") == 1
    jobs = protocol.read_batch(line[:-1])
    assert [(m["id"], m["args"], m["kwargs"], m["using"]) for m in jobs] == [
        (1, [1, 2], {"x": 1}, "other"), (2, [], {"x": 1}, "other"),
    ]


def test_reply_line__stamps_id_attempt_pid_end_and_duration() -> None:
    line = protocol.reply_line({"outcome": "succeeded", "result": "\ud800"}, {"id": 7, "attempt": 2},
                               pid=42, began=10.0, ended=10.5)

    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"outcome": "succeeded", "result": "\ud800", "id": 7, "a": 2, "pid": 42,
                                "t": 10.5, "d": 0.5}


def test_reply_line__a_job_that_returned_none_reads_as_the_encoded_reply_would() -> None:
    returned_none = {"outcome": "succeeded", "result": None}
    line = protocol.reply_line(dict(returned_none), {"id": 7, "attempt": 2}, pid=42, began=0.1, ended=1765152000.3)

    assert line.endswith(b"\n") and line.count(b"\n") == 1
    stamped = {**returned_none, "id": 7, "a": 2, "pid": 42, "t": 1765152000.3, "d": 1765152000.3 - 0.1}
    assert line == json.dumps(stamped, separators=(",", ":")).encode() + b"\n"
    assert json.loads(line) == stamped


def test_read_replies__parses_every_whole_line_at_once() -> None:
    lines = b"\n".join(protocol.reply_line({"outcome": "succeeded"}, {"id": i, "attempt": 1}, 1, 0.0, 1.0)[:-1]
                       for i in range(3))

    assert [r["id"] for r in protocol.read_replies(lines, "w", 1)] == [0, 1, 2]


def test_read_replies__drops_and_logs_lines_that_are_not_replies(caplog: pytest.LogCaptureFixture) -> None:
    replies = protocol.read_replies(b'{"id": 1}\nnot json\n[1, 2]', "w", 99)

    assert replies == [{"id": 1}]
    refused = [r.getMessage() for r in caplog.records if "event=reply_refused" in r.getMessage()]
    assert len(refused) == 2 and all("child=99" in line for line in refused)


def test_batch_line__carries_the_trace_context_only_when_the_row_has_one() -> None:
    traced = {**row(1), "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
              "tracestate": "k=v"}
    untraced = {**row(2), "traceparent": None, "tracestate": None}

    first, second = protocol.read_batch(protocol.batch_line([traced, untraced], "default")[:-1])

    assert (first["traceparent"], first["tracestate"]) == (traced["traceparent"], "k=v")
    assert "traceparent" not in second and "tracestate" not in second
