"""How far the worker claims ahead of its free children, and how many jobs a child gets at once.

Plain arithmetic over numbers (the recent average job duration, how many jobs finished, the idle
children, the buffer), with no database and no clock: tests/unit/worker/test_claim_ahead.py.

Claim ahead of free children only while jobs are short: then a round trip per job would cost more
than the jobs (and each statement's fixed cost in PostgreSQL, ~1 ms, would be shared by few
jobs), while for longer jobs claiming ahead would hold back work another worker could start. The
buffer holds about CLAIM_AHEAD seconds of work per child at the recent average job duration, at
most MAX_CLAIM jobs, and nothing once jobs take PREFETCH_BELOW seconds or more. Until WARMUP jobs
have finished the average means little, so the buffer starts at PREFETCH_FACTOR jobs per child.

Jobs averaging under BATCH_BELOW seconds go to a child several at a time: up to BATCH_WORK seconds
of them, and no more than an even share of the buffer per idle child. The child runs them back to
back and answers each; a longer job always goes alone.

A queue of mixed jobs is not short, whatever its average: claimed ahead behind a child's
one-second job, a 1 ms job waits out that second while another worker's children are free (bench
K saw 1 ms jobs wait 0.75 s in a buffer so). Any job of the last RECENT that took PREFETCH_BELOW
or more stops claiming ahead (and batching) until RECENT shorter ones have followed it: each
worker then claims for its idle children only, and a short job goes to whichever has one.

Jobs that flow control holds (db/gates.py) are claimed ahead less: each one takes a slot of a
limit shared by every worker from its claim on, so a buffer of them is slots no other worker can
use meanwhile. One worker claiming 0.1 s of no-op jobs over 100 keys limited to one each took
every key's slot, and the other workers had nothing to run until the drain ended. So at most
GATED_AHEAD_PER_CHILD of them wait per child.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFETCH_BELOW = 0.05
PREFETCH_FACTOR = 4
CLAIM_AHEAD = 0.1
MAX_CLAIM = 200
WARMUP = 8
BATCH_BELOW = 0.005
BATCH_WORK = 0.02
GATED_AHEAD_PER_CHILD = 32
RECENT = 64


@dataclass(slots=True)
class ClaimAhead:
    """The claim-ahead policy of a worker with ``concurrency`` children, and what it has seen."""

    concurrency: int
    #: Jobs finished so far (counted by record()).
    finished: int = 0
    #: An exponential moving average of job durations, in seconds; the first job sets it, so one
    #: hour-long job is enough to stop claiming ahead.
    average: float = 0.0
    #: Jobs finished since the last one that took PREFETCH_BELOW or more (None: none has).
    since_long: int | None = None

    def record(self, duration: float) -> None:
        """Count a finished job that took ``duration`` seconds."""
        if self.finished:
            self.average = 0.9 * self.average + 0.1 * duration
        else:
            self.average = duration
        self.finished += 1
        if duration >= PREFETCH_BELOW:
            self.since_long = 0
        elif self.since_long is not None:
            self.since_long += 1

    def _mixed(self) -> bool:
        """Whether one of the last RECENT jobs was long (see the module's docstring)."""
        return self.since_long is not None and self.since_long < RECENT

    def buffer_size(self) -> int:
        """How many claimed jobs to keep waiting for a child (see CLAIM_AHEAD)."""
        if self.finished < WARMUP:
            # No average yet: a little ahead, unless the jobs seen so far are already long.
            if self.finished and self.average >= PREFETCH_BELOW:
                return 0
            return PREFETCH_FACTOR * self.concurrency
        if self.average >= PREFETCH_BELOW or self._mixed():
            return 0
        per_child = CLAIM_AHEAD / max(self.average, 1e-4)
        return int(min(MAX_CLAIM, self.concurrency * per_child))

    def gated_buffer_size(self) -> int:
        """How many claimed jobs held by flow control to keep waiting for a child (see above)."""
        return min(self.buffer_size(), GATED_AHEAD_PER_CHILD * self.concurrency)

    def claim_target(self, idle: int, buffered: int, waiting: int, left: int | None) -> int:
        """How many jobs to claim now: the ``idle`` children, plus a buffer while jobs are short.

        ``buffered`` jobs wait for a child, ``waiting`` wait inside a child behind its running
        one (they count as buffered, but can't move to an idle child); ``left`` is how many more
        the worker may claim at all (None: no limit). The buffer is refilled once it is down to
        half its size (or can't feed the idle children), so a worker draining a long queue of
        short jobs claims about MAX_CLAIM / 2 per round trip instead of one or two.
        """
        starving = max(0, idle - buffered)
        room = self.buffer_size()
        held = buffered + waiting
        if not starving and held > room // 2:
            return 0  # refill the buffer only once it is down to half
        want = starving + max(0, room - held)
        if left is not None:
            want = min(want, left)
        return max(0, want)

    def declare_ahead(self) -> int:
        """How many buffered jobs to declare ahead of the children (worker/ledger.py): two
        batches each, so a child that finishes one finds the next declared, and the round trip
        that declares more rides along with the outcomes it just sent."""
        return 2 * self.concurrency * self.batch_size(self.concurrency, max(self.buffer_size(), 1))

    def batch_size(self, idle: int, buffered: int) -> int:
        """How many of ``buffered`` jobs to hand each of ``idle`` children at once (see BATCH_WORK)."""
        if self.finished < WARMUP or self.average >= BATCH_BELOW or self._mixed():
            return 1
        share = -(-buffered // idle)  # spread the buffer over the idle children
        return max(1, min(share, int(BATCH_WORK / max(self.average, 1e-5))))
