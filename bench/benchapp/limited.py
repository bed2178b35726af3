"""Section G's jobs: no-ops under flow control, and their twin without it.

Imported by jobs.py only when the measured code has flow control (``--at`` may pin a commit from
before it, whose ``@job`` takes none of these options).
"""

from __future__ import annotations

from django_jobs import job

#: bench.rated's limit: section G checks the starts against it.
RATE_PER_SECOND = 200


@job(name="bench.keyed", concurrency=1, concurrency_key="key:{key}")
def keyed(key: int) -> None:
    """Do nothing, one at a time per ``key``."""


@job(name="bench.unkeyed")
def unkeyed(key: int) -> None:
    """Do nothing: bench.keyed without its limit (the same argument, the same rows but the key)."""


@job(name="bench.rated", rate=f"{RATE_PER_SECOND}/s")
def rated() -> None:
    """Do nothing, at most RATE_PER_SECOND starts in any second."""
