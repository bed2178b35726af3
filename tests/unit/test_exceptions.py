"""exceptions.py: each error is a JobsError and also the builtin a caller would catch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from django_jobs import exceptions as e


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (e.JobNotRegistered, LookupError),
        (e.InvalidJobArguments, TypeError),
        (e.InvalidPayload, ValueError),
        (e.PayloadTooLarge, ValueError),
        (e.InvalidJobOptions, ValueError),
        (e.InvalidSchedule, ValueError),
        (e.InvalidCron, ValueError),
        (e.JobTimeout, TimeoutError),
        (e.WorkerLost, RuntimeError),
        (e.OutcomeNotStorable, ValueError),
        (e.ResultNotJSON, TypeError),
    ],
)
def test_errors__are_jobs_errors_and_their_builtin(error: type[Exception], builtin: type[Exception]) -> None:
    with pytest.raises(builtin):
        raise error("boom")
    with pytest.raises(e.JobsError):
        raise error("boom")


def test_control__retry_and_stop_job_are_not_errors() -> None:
    assert not issubclass(e.Retry, e.JobsError) and not issubclass(e.StopJob, e.JobsError)
    assert e.Retry(5).delay == timedelta(seconds=5)
    assert e.StopJob("enough").reason == "enough"


@pytest.mark.parametrize(
    "kwargs",
    [
        {}, {"delay": 5, "at": datetime(2030, 1, 1, tzinfo=UTC)}, {"in_": 5, "at": datetime(2030, 1, 1, tzinfo=UTC)},
        {"at": datetime(2030, 1, 1)}, {"delay": 5, "in_": 5}, {"delay": "5m"},
    ],
)
def test_retry__needs_exactly_one_of_in_or_an_aware_at(kwargs: dict[str, object]) -> None:
    with pytest.raises(e.InvalidJobOptions):
        e.Retry(**kwargs)  # type: ignore[arg-type]


def test_retry__delay_is_the_word_and_in_its_alias() -> None:
    assert e.Retry(delay=timedelta(minutes=5)).delay == timedelta(minutes=5)
    assert e.Retry(delay=30).delay == timedelta(seconds=30)
    alias = e.Retry(in_=timedelta(minutes=5))
    assert alias.delay == alias.in_ == timedelta(minutes=5)
    assert str(alias) == "retry in 300 s"
