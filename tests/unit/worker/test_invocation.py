"""worker/invocation.py: one job called in this process, and what happened as a reply."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from django_jobs import job
from django_jobs.context import current_job
from django_jobs.worker.invocation import error_info, run_job


@job(name="tests.unit.returns_tuple")
def returns_tuple() -> object:
    return ("done", {"pair": (1, 2)})


def message(name: str, args: Any = None, kwargs: Any = None) -> dict[str, Any]:
    return {"id": 7, "name": name, "args": [] if args is None else args, "kwargs": kwargs or {},
            "attempt": 1, "max_attempts": 3, "queue": "default", "using": "default"}


def run(msg: dict[str, Any]) -> dict[str, Any]:
    return run_job(msg, "w-test", close_connections=False)


def test_run_job__a_return_value_is_a_success_and_the_job_context_is_gone_after() -> None:
    assert run(message("tests.testapp.jobs.noop")) == {"outcome": "succeeded", "result": None}
    assert current_job() is None


def test_run_job__an_unknown_name_fails_without_retry() -> None:
    reply = run(message("tests.testapp.jobs.gone"))

    assert (reply["outcome"], reply["retryable"]) == ("failed", False)
    assert reply["error"]["class"] == "django_jobs.exceptions.JobNotRegistered"


@pytest.mark.parametrize(("args", "kwargs"), [("abc", {}), ([], [1])])
def test_run_job__args_not_a_list_or_kwargs_not_a_dict_fail_without_running(args: Any, kwargs: Any) -> None:
    reply = run(message("tests.testapp.jobs.noop", args, kwargs))

    assert (reply["outcome"], reply["retryable"]) == ("failed", False)
    assert reply["error"]["class"] == "django_jobs.exceptions.InvalidPayload"


def test_run_job__a_result_json_cannot_hold_is_a_success_with_no_result_and_a_warning_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="django_jobs"):
        reply = run(message("tests.testapp.jobs.returns_unjsonable"))

    assert (reply["outcome"], reply["result"]) == ("succeeded", None)
    assert reply["unstorable"].startswith("the return value is a set, which doesn't survive a JSON round trip")
    assert "event=result_unstorable job=7 name=tests.testapp.jobs.returns_unjsonable attempt=1" in caplog.text


def test_run_job__tuples_in_a_result_are_stored_as_lists() -> None:
    reply = run(message("tests.unit.returns_tuple"))

    assert reply == {"outcome": "succeeded", "result": ["done", {"pair": [1, 2]}]}


def test_run_job__arguments_the_function_does_not_take_fail_retryably_with_the_traceback() -> None:
    reply = run(message("tests.testapp.jobs.noop", [1, 2]))

    assert (reply["outcome"], reply["retryable"]) == ("failed", True)
    assert reply["error"]["class"] == "builtins.TypeError"
    assert "Traceback" in reply["error"]["traceback"]


def test_error_info__class_path_message_and_traceback() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        info = error_info(exc)

    assert info["class"] == "builtins.KeyError" and "missing" in info["message"]
