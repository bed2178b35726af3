"""lifecycle.decide(): one row per transition of an ended attempt (no database, no clock)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from django_jobs.lifecycle import (
    AT_MOST_ONCE,
    NEVER_STARTED,
    STOPPED_ON_REQUEST,
    Armed,
    Attempt,
    Ended,
    ErrorRecord,
    Happened,
    announced_outcome,
    arm,
    decide,
    never_received,
    never_started,
    on_stop_request,
    rescue,
    upstream_failed,
)
from django_jobs.models import JobStatus
from django_jobs.retry import Backoff

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
STARTED = NOW - timedelta(seconds=2)
BACKOFF = Backoff(base=10, factor=2, max_delay=3600, jitter=0)
BOOM = ErrorRecord("builtins.ValueError", "boom\nsecond line", "Traceback ...")


def attempt(n: int = 1, of: int = 3) -> Attempt:
    return Attempt(job_id=7, name="shop.sync", attempt=n, max_attempts=of, worker_id="w:1",
                   started_at=STARTED, duration=2.0)


# (what happened, attempt number of max, registered?) -> (status, run_at, attempts_delta,
# max_attempts_delta, last_error)
TRANSITIONS: list[tuple[str, Ended, Attempt, Backoff | None, JobStatus, Any, int, int, str | None]] = [
    ("returned", Ended(Happened.SUCCEEDED, result={"n": 1}), attempt(), BACKOFF,
     JobStatus.SUCCEEDED, None, 0, 0, ""),
    ("returned a value JSON can't hold: a success all the same",
     Ended(Happened.SUCCEEDED, unstorable="the return value is a set"), attempt(1, 3), BACKOFF,
     JobStatus.SUCCEEDED, None, 0, 0, ""),
    ("raised, attempts left", Ended(Happened.FAILED, error=BOOM), attempt(1, 3), BACKOFF,
     JobStatus.RETRYING, NOW + timedelta(seconds=10), 0, 0, "ValueError: boom"),
    ("raised on the second attempt: longer backoff", Ended(Happened.FAILED, error=BOOM), attempt(2, 3), BACKOFF,
     JobStatus.RETRYING, NOW + timedelta(seconds=20), 0, 0, "ValueError: boom"),
    ("raised on the first attempt after an operator retry: the first delay again",
     Ended(Happened.FAILED, error=BOOM), replace(attempt(11, 20), attempts_at_retry=10), BACKOFF,
     JobStatus.RETRYING, NOW + timedelta(seconds=10), 0, 0, "ValueError: boom"),
    ("raised, attempts spent", Ended(Happened.FAILED, error=BOOM), attempt(3, 3), BACKOFF,
     JobStatus.DEAD, None, 0, 0, "ValueError: boom"),
    ("raised a dont_retry error", Ended(Happened.FAILED, error=BOOM, retryable=False), attempt(1, 3), BACKOFF,
     JobStatus.DEAD, None, 0, 0, "ValueError: boom"),
    ("raised, job no longer registered", Ended(Happened.FAILED, error=BOOM), attempt(1, 3), None,
     JobStatus.DEAD, None, 0, 0, "ValueError: boom"),
    ("timed out, attempts left", Ended.failure(Happened.TIMEOUT, "JobTimeout", "ran past 5s"), attempt(1, 3), BACKOFF,
     JobStatus.RETRYING, NOW + timedelta(seconds=10), 0, 0, "JobTimeout: ran past 5s"),
    ("child lost, attempts spent", Ended.failure(Happened.LOST, "WorkerLost", "killed by SIGKILL"), attempt(3, 3), BACKOFF,
     JobStatus.DEAD, None, 0, 0, "WorkerLost: killed by SIGKILL"),
    ("Retry(delay=30s)", Ended(Happened.RETRY, retry_in=30.0), attempt(), BACKOFF,
     JobStatus.QUEUED, NOW + timedelta(seconds=30), 0, 1, None),
    ("Retry(at=...)", Ended(Happened.RETRY, retry_at=NOW + timedelta(hours=1)), attempt(), BACKOFF,
     JobStatus.QUEUED, NOW + timedelta(hours=1), 0, 1, None),
    ("StopJob(reason)", Ended(Happened.STOPPED, reason="customer gone"), attempt(), BACKOFF,
     JobStatus.STOPPED, None, 0, 0, "customer gone"),
    ("StopJob() without a reason", Ended(Happened.STOPPED), attempt(), BACKOFF,
     JobStatus.STOPPED, None, 0, 0, "stopped by the job"),
    ("handed back at shutdown", Ended(Happened.HANDED_BACK), attempt(), BACKOFF,
     JobStatus.QUEUED, NOW, -1, 0, None),
    ("claimed, but no such job is registered here",
     Ended.failure(Happened.UNREGISTERED, "JobNotRegistered", "no job named 'x'", retryable=False),
     attempt(1, 3), None, JobStatus.DEAD, None, 0, 0, "JobNotRegistered: no job named 'x'"),
]


@pytest.mark.parametrize(
    ("ended", "attempt_", "backoff", "status", "run_at", "attempts_delta", "max_attempts_delta", "last_error"),
    [row[1:] for row in TRANSITIONS], ids=[row[0] for row in TRANSITIONS],
)
def test_decide__every_transition(ended, attempt_, backoff, status, run_at, attempts_delta,
                                  max_attempts_delta, last_error):
    t = decide(attempt_, ended, NOW, backoff)
    assert (t.status, t.run_at, t.attempts_delta, t.max_attempts_delta, t.last_error) == (
        status, run_at, attempts_delta, max_attempts_delta, last_error)
    entry = t.history_entry
    assert entry["outcome"] == ended.happened.value and entry["attempt"] == attempt_.attempt
    assert entry["worker"] == "w:1" and entry["finished_at"] == NOW.isoformat() and entry["duration"] == 2.0


def test_decide__success_stores_the_result_and_clears_the_error():
    t = decide(attempt(), Ended(Happened.SUCCEEDED, result=[1, 2]), NOW, BACKOFF)
    assert t.set_result and t.result == [1, 2] and t.last_error == ""


def test_decide__a_failure_records_the_whole_error_and_when_it_retries():
    t = decide(attempt(), Ended(Happened.FAILED, error=BOOM), NOW, BACKOFF)
    assert t.history_entry["error"] == BOOM.as_dict()
    assert t.history_entry["retry_at"] == (NOW + timedelta(seconds=10)).isoformat()
    assert not t.set_result


def test_ended_from_reply__reads_what_a_child_sends():
    at = NOW + timedelta(minutes=5)
    assert Ended.from_reply({"outcome": "retry", "at": at.isoformat()}).retry_at == at
    failed = Ended.from_reply({"outcome": "failed", "retryable": False,
                               "error": {"class": "x.E", "message": "m", "traceback": "t"}})
    assert failed == Ended(Happened.FAILED, error=ErrorRecord("x.E", "m", "t"), retryable=False)
    with pytest.raises(ValueError):
        Ended.from_reply({"outcome": "exploded"})


def test_error_record__from_an_exception_is_always_storable():
    try:
        raise ValueError("bad \x00 name report-\udcff.csv")
    except ValueError as exc:
        record = ErrorRecord.from_exception(exc)
    assert record.class_path == "builtins.ValueError"
    assert record.message == "bad \\x00 name report-\\udcff.csv"
    assert "report-\\udcff.csv" in record.traceback
    record.message.encode("utf-8")


def test_error_record__summary_is_the_first_line_cut_to_size():
    assert ErrorRecord("a.B", "x" * 2000 + "\nmore").summary == "B: " + "x" * 997


def test_rescue__a_lost_attempt_is_due_again_at_once_while_attempts_are_left():
    t = rescue(attempt(1, 3), "the worker stopped sending heartbeats", NOW, stop_requested=False, rescuer="r:1")
    assert (t.status, t.run_at, t.attempts_delta) == (JobStatus.RETRYING, NOW, 0)
    assert t.last_error == "WorkerLost: the worker stopped sending heartbeats"
    assert t.history_entry["outcome"] == "lost" and t.history_entry["rescued_by"] == "r:1"


def test_rescue__spent_attempts_end_dead_and_a_stop_request_ends_stopped():
    spent = rescue(attempt(3, 3), "gone", NOW, stop_requested=False, rescuer="r")
    asked = rescue(attempt(1, 3), "gone", NOW, stop_requested=True, rescuer="r")
    assert spent.status == JobStatus.DEAD
    assert (asked.status, asked.last_error) == (JobStatus.STOPPED, STOPPED_ON_REQUEST)


def test_on_stop_request__beats_any_outcome_and_counts_the_attempt():
    handed_back = decide(attempt(), Ended(Happened.HANDED_BACK), NOW, BACKOFF)
    stopped = on_stop_request(handed_back)
    assert (stopped.status, stopped.attempts_delta, stopped.last_error) == (
        JobStatus.STOPPED, 0, STOPPED_ON_REQUEST)
    assert on_stop_request(decide(attempt(), Ended(Happened.SUCCEEDED), NOW, BACKOFF)).status == JobStatus.STOPPED


def test_on_stop_request__history_says_stopped_and_keeps_what_the_attempt_did():
    returned = on_stop_request(decide(attempt(), Ended(Happened.SUCCEEDED, result=7), NOW, BACKOFF))
    entry = returned.history_entry
    assert (entry["outcome"], entry["ended_as"], entry["reason"]) == ("stopped", "succeeded", STOPPED_ON_REQUEST)
    assert returned.result == 7  # a return value is still stored
    # A job that raised StopJob itself keeps its own reason.
    own = on_stop_request(decide(attempt(), Ended(Happened.STOPPED, reason="enough"), NOW, BACKOFF))
    assert own.history_entry["reason"] == "enough" and "ended_as" not in own.history_entry
    lost = rescue(attempt(1, 3), "gone", NOW, stop_requested=True, rescuer="r")
    assert (lost.history_entry["outcome"], lost.history_entry["ended_as"]) == ("stopped", "lost")


def test_announced_outcome__is_stopped_whenever_the_status_written_is():
    assert announced_outcome("succeeded", "stopped") == "stopped"
    assert announced_outcome("failed", "stopped") == "stopped"
    assert announced_outcome("succeeded", "succeeded") == "succeeded"
    assert announced_outcome("handed_back", "queued") == "handed_back"


def test_decide__a_job_that_wrapped_up_at_shutdown_is_handed_back_with_the_reason():
    t = decide(attempt(2, 3), Ended.from_reply({"outcome": "handed_back", "reason": "wrapped up"}), NOW, BACKOFF)
    assert (t.status, t.run_at, t.attempts_delta) == (JobStatus.QUEUED, NOW, -1)
    assert t.history_entry["outcome"] == "handed_back" and t.history_entry["reason"] == "wrapped up"


def test_never_received__goes_back_unstarted_without_spending_an_attempt():
    t = never_received(attempt(2, 3), NOW)
    assert (t.status, t.run_at, t.attempts_delta) == (JobStatus.QUEUED, NOW, -1)
    assert t.history_entry["outcome"] == "handed_back" and "reply never reached" in t.history_entry["reason"]


def test_rescue__a_job_lost_max_lost_times_ends_dead_as_a_poison_pill_whatever_its_attempts():
    third = rescue(attempt(3, 10), "gone", NOW, stop_requested=False, rescuer="r", lost_before=2, max_lost=3)
    second = rescue(attempt(2, 10), "gone", NOW, stop_requested=False, rescuer="r", lost_before=1, max_lost=3)
    assert (third.status, third.run_at) == (JobStatus.DEAD, None)
    assert third.history_entry["outcome"] == "lost"
    assert "lost 3 times (MAX_LOST=3)" in third.history_entry["reason"]
    assert "poison pill" in third.last_error
    assert second.status == JobStatus.RETRYING


def test_decide__a_child_lost_max_lost_times_ends_dead_and_other_failures_do_not_count():
    lost = Ended.failure(Happened.LOST, "WorkerLost", "killed by SIGKILL")
    lost.lost_before = 2
    failed = Ended(Happened.FAILED, error=BOOM, lost_before=2)
    assert decide(attempt(3, 10), lost, NOW, BACKOFF, max_lost=3).status == JobStatus.DEAD
    assert decide(attempt(3, 10), lost, NOW, BACKOFF, max_lost=0).status == JobStatus.RETRYING  # no limit
    assert decide(attempt(3, 10), lost, NOW, BACKOFF, max_lost=4).status == JobStatus.RETRYING
    assert decide(attempt(3, 10), failed, NOW, BACKOFF, max_lost=3).status == JobStatus.RETRYING


def test_rescue__a_max_attempts_1_job_that_may_have_started_ends_dead_saying_why():
    t = rescue(attempt(1, 1), "gone", NOW, stop_requested=False, rescuer="r")
    assert (t.status, t.history_entry["reason"]) == (JobStatus.DEAD, AT_MOST_ONCE)
    assert "at most once" in t.history_entry["reason"]


def test_never_started__goes_back_without_spending_an_attempt_and_names_its_rescuer():
    t = never_started(attempt(1, 1), NOW, rescuer="r:2")
    assert (t.status, t.run_at, t.attempts_delta) == (JobStatus.QUEUED, NOW, -1)
    assert t.history_entry["outcome"] == "handed_back" and t.history_entry["reason"] == NEVER_STARTED
    assert t.history_entry["rescued_by"] == "r:2"


def test_ended_from_reply__reads_how_many_times_the_job_was_lost_before():
    reply = {"outcome": "lost", "error": {"class": "django_jobs.exceptions.WorkerLost", "message": "x"},
             "lost_before": 2}
    assert Ended.from_reply(reply).lost_before == 2
    assert Ended.from_reply({"outcome": "failed"}).lost_before == 0


def test_decide__a_result_not_stored_is_marked_with_a_warning_in_the_history_entry() -> None:
    ended = Ended.from_reply({"outcome": "succeeded", "result": None, "unstorable": "the return value is a set"})

    t = decide(attempt(), ended, NOW, BACKOFF)

    assert (t.set_result, t.result) == (True, None)
    assert t.history_entry["result_unstorable"] is True
    assert t.history_entry["warning"] == "the return value is a set"


# -- workflows: lifecycle.arm() ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ({}, Armed(JobStatus.QUEUED, 0)),
        ({1: "succeeded", 2: "succeeded"}, Armed(JobStatus.QUEUED, 0)),
        ({1: "succeeded", 2: "running", 3: "waiting"}, Armed(JobStatus.WAITING, 2)),
        ({1: "queued"}, Armed(JobStatus.WAITING, 1)),
        ({1: "retrying", 2: "dead"}, Armed(JobStatus.STOPPED, 2, 2, "upstream job #2 ended dead")),
        ({7: "stopped", 3: "dead"}, Armed(JobStatus.STOPPED, 2, 3, "upstream job #3 ended dead")),
    ],
    ids=["none", "all-succeeded", "some-pending", "queued", "one-dead", "lowest-failed-named"],
)
def test_arm__waits_on_what_hasnt_succeeded_and_stops_on_a_failure(upstream: dict[int, str], expected: Armed) -> None:
    assert arm(upstream) == expected


def test_upstream_failed__names_the_job_and_how_it_ended() -> None:
    assert upstream_failed(12, "stopped") == "upstream job #12 ended stopped"
