"""The worker's shutdown, as its children see it: one byte of memory they all share.

The worker sets it when a graceful shutdown begins; a job asking ``current_job().stop_requested``
reads it (no system call, no database), and so does a child about to start the next job of its
batch. Shared memory rather than a signal: a signal would interrupt whatever system call the job
is in, and would be lost by a child started after it was sent.
"""

from __future__ import annotations

import mmap


class ShutdownFlag:
    """A flag the worker sets and every child it forks afterwards (or before) can read."""

    def __init__(self) -> None:
        # Anonymous and MAP_SHARED (mmap's default): a fork shares the page instead of copying it.
        self._memory = mmap.mmap(-1, 1)

    def set(self) -> None:
        """Note that the worker is shutting down (safe in a signal handler: one memory write)."""
        self._memory[0] = 1

    def is_set(self) -> bool:
        """Whether the worker is shutting down."""
        return self._memory[0] == 1
