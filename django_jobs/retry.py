"""Backoff between failed attempts: pure functions, no database, no clock."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .conf import jobs_settings


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter.

    After failed attempt ``n`` (1-based) the next attempt is due after::

        delay(n) = min(max_delay, base * factor ** (n - 1) * (1 + jitter * u)),  u uniform in [-1, 1]

    With the defaults (base 5 s, factor 2, max 1 h, jitter 0.1): about 5 s, 10 s, 20 s, 40 s, …,
    reaching the one-hour cap after attempt 11. Jitter spreads retries of jobs that failed together
    (an outage) so they don't all return in the same second.
    """

    base: float = 5.0
    factor: float = 2.0
    max_delay: float = 3600.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 1 or self.max_delay < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(
                f"Invalid {self!r}: base and max_delay must be >= 0, factor >= 1, jitter in [0, 1]."
            )

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt ``attempt``; ``rand`` returns a float in [0, 1)."""
        exponent = max(attempt - 1, 0)
        try:
            raw = self.base * float(self.factor) ** exponent
        except OverflowError:
            # Past the largest float (a big factor, or a huge attempt number): past any cap too.
            raw = float("inf") if self.base else 0.0
        # Jitter spreads the delay; the cap stays a hard limit.
        return min(self.max_delay, raw * (1 + self.jitter * (2 * rand() - 1)))


def default_backoff() -> Backoff:
    """The backoff configured in ``DJANGO_JOBS``, used by jobs that don't set their own."""
    return Backoff(
        base=float(jobs_settings.BACKOFF_BASE),
        factor=float(jobs_settings.BACKOFF_FACTOR),
        max_delay=float(jobs_settings.BACKOFF_MAX),
        jitter=float(jobs_settings.BACKOFF_JITTER),
    )
