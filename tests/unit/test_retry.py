"""retry.py: the backoff formula, its cap and its jitter, with ``rand`` injected (no clock, no DB)."""

from __future__ import annotations

import math

import pytest
from django.test import override_settings

from django_jobs.retry import Backoff, default_backoff


def no_jitter() -> float:
    # u = 2 * 0.5 - 1 = 0: the jitter factor is exactly 1.
    return 0.5


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (10, 2560.0), (11, 3600.0), (12, 3600.0)],
)
def test_delay__defaults_follow_the_documented_examples(attempt: int, expected: float) -> None:
    # The docstring: about 5 s, 10 s, 20 s, 40 s, …, reaching the one-hour cap after attempt 11.
    assert Backoff().delay(attempt, rand=no_jitter) == expected


def test_delay__is_base_times_factor_to_the_attempt_minus_one() -> None:
    backoff = Backoff(base=2.0, factor=3.0, max_delay=10_000, jitter=0.0)

    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [2.0, 6.0, 18.0, 54.0]


def test_delay__attempt_zero_or_negative_waits_the_base() -> None:
    backoff = Backoff(base=7.0, factor=2.0, jitter=0.0)

    assert backoff.delay(0) == 7.0
    assert backoff.delay(-3) == 7.0


def test_delay__is_capped_at_max_delay() -> None:
    backoff = Backoff(base=1.0, factor=10.0, max_delay=60.0, jitter=0.0)

    assert backoff.delay(2) == 10.0
    assert backoff.delay(3) == 60.0
    assert backoff.delay(50) == 60.0


def test_delay__huge_attempt_numbers_stay_at_the_cap() -> None:
    backoff = Backoff(base=5.0, factor=2.0, max_delay=3600.0, jitter=0.0)

    assert backoff.delay(10_000) == 3600.0


def test_delay__huge_factor_does_not_overflow() -> None:
    # 1e6 ** 62 is past the largest float: the cap must apply before the power is computed.
    backoff = Backoff(base=1.0, factor=1e6, max_delay=60.0, jitter=0.0)

    assert backoff.delay(63) == 60.0


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.8), (0.25, 0.9), (0.5, 1.0), (0.75, 1.1)])
def test_delay__jitter_scales_by_one_plus_jitter_times_u(rand: float, factor: float) -> None:
    backoff = Backoff(base=10.0, factor=2.0, jitter=0.2)

    assert backoff.delay(2, rand=lambda: rand) == pytest.approx(20.0 * factor)


def test_delay__jitter_stays_within_its_bounds() -> None:
    backoff = Backoff(base=10.0, factor=1.0, jitter=0.1)
    # rand() is in [0, 1): the extremes are 0.0 and the largest float below 1.
    lowest = backoff.delay(1, rand=lambda: 0.0)
    highest = backoff.delay(1, rand=lambda: math.nextafter(1.0, 0.0))

    assert lowest == pytest.approx(9.0)
    assert 10.0 < highest <= 11.0
    assert all(9.0 <= backoff.delay(1) <= 11.0 for _ in range(1000))


def test_delay__the_cap_is_a_hard_limit_even_with_jitter() -> None:
    backoff = Backoff(base=80.0, factor=1.0, max_delay=100.0, jitter=0.5)

    assert backoff.delay(1, rand=lambda: 0.0) == pytest.approx(40.0)
    assert backoff.delay(1, rand=lambda: math.nextafter(1.0, 0.0)) == pytest.approx(100.0)
    assert Backoff(base=100.0, factor=2.0, max_delay=100.0, jitter=0.5).delay(5, rand=lambda: 0.0) == 100.0


def test_delay__zero_jitter_ignores_rand() -> None:
    backoff = Backoff(base=3.0, jitter=0.0)

    assert backoff.delay(1, rand=lambda: 0.0) == backoff.delay(1, rand=lambda: 0.99) == 3.0


@pytest.mark.parametrize(
    "options",
    [
        {"base": -1.0},
        {"factor": 0.5},
        {"max_delay": -1.0},
        {"jitter": -0.1},
        {"jitter": 1.5},
    ],
)
def test_backoff__rejects_out_of_range_values(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="base and max_delay must be >= 0, factor >= 1, jitter in"):
        Backoff(**options)


def test_backoff__is_a_frozen_value() -> None:
    backoff = Backoff()

    with pytest.raises(AttributeError):
        backoff.base = 1.0  # type: ignore[misc]
    assert Backoff() == backoff


def test_default_backoff__reads_django_jobs_settings() -> None:
    settings = {"BACKOFF_BASE": 2, "BACKOFF_FACTOR": 4, "BACKOFF_MAX": 100, "BACKOFF_JITTER": 0}
    with override_settings(DJANGO_JOBS=settings):
        backoff = default_backoff()

    assert backoff == Backoff(base=2.0, factor=4.0, max_delay=100.0, jitter=0.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [2.0, 8.0, 32.0, 100.0]


def test_default_backoff__uses_the_defaults_without_settings() -> None:
    with override_settings(DJANGO_JOBS={}):
        assert default_backoff() == Backoff(base=5.0, factor=2.0, max_delay=3600.0, jitter=0.1)


def test_delay__zero_base_stays_zero_for_any_attempt() -> None:
    backoff = Backoff(base=0.0, factor=2.0, jitter=0.0)

    assert backoff.delay(5) == backoff.delay(100_000) == 0.0
