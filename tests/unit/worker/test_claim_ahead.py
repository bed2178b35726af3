"""django_jobs/worker/claim_ahead.py: how far a worker claims ahead, as arithmetic (no database)."""

from __future__ import annotations

import pytest

from django_jobs.worker.claim_ahead import (
    BATCH_BELOW,
    BATCH_WORK,
    CLAIM_AHEAD,
    GATED_AHEAD_PER_CHILD,
    MAX_CLAIM,
    PREFETCH_BELOW,
    PREFETCH_FACTOR,
    WARMUP,
    ClaimAhead,
)


def warmed(concurrency: int, average: float) -> ClaimAhead:
    """A policy that has seen enough jobs for its average to count."""
    return ClaimAhead(concurrency, finished=1000, average=average)


# -- the average job duration ------------------------------------------------------------------


def test_record__the_first_job_sets_the_average() -> None:
    policy = ClaimAhead(2)
    policy.record(3600.0)

    assert (policy.finished, policy.average) == (1, 3600.0)


def test_record__later_jobs_move_the_average_a_tenth_of_the_way() -> None:
    policy = ClaimAhead(2, finished=1, average=1.0)
    policy.record(2.0)

    assert policy.finished == 2 and policy.average == pytest.approx(1.1)


# -- the buffer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("average", "expected"),
    [(0.0002, 200), (0.004, 50), (0.02, 10), (0.06, 0)],
    ids=["no-op", "4ms", "20ms", "60ms"],
)
def test_claim_ahead__buffers_a_tenth_of_a_second_of_short_jobs_and_none_of_long_ones(
    average: float, expected: int
) -> None:
    policy = ClaimAhead(2)
    assert policy.buffer_size() == 8  # warming up: 4 per child until the average means something
    policy.finished, policy.average = 1000, average

    assert policy.buffer_size() == expected


def test_buffer_size__is_claim_ahead_seconds_of_work_per_child() -> None:
    assert warmed(3, 0.01).buffer_size() == int(3 * CLAIM_AHEAD / 0.01)


def test_buffer_size__never_passes_max_claim() -> None:
    assert warmed(64, 0.0001).buffer_size() == MAX_CLAIM


def test_buffer_size__while_warming_up_is_prefetch_factor_per_child_until_a_long_job() -> None:
    policy = ClaimAhead(3, finished=WARMUP - 1, average=PREFETCH_BELOW / 2)
    assert policy.buffer_size() == PREFETCH_FACTOR * 3
    policy.average = PREFETCH_BELOW

    assert policy.buffer_size() == 0


def test_buffer_size__is_nothing_from_prefetch_below_up() -> None:
    assert warmed(4, PREFETCH_BELOW).buffer_size() == 0


# -- how many to claim --------------------------------------------------------------------------


def test_claim_target__one_per_idle_child_for_long_jobs() -> None:
    assert warmed(4, 1.0).claim_target(idle=3, buffered=0, waiting=4, left=None) == 3


def test_claim_target__idle_children_the_buffer_can_t_feed_get_jobs_even_with_a_full_buffer() -> None:
    policy = warmed(2, 0.0002)  # room for 200
    assert policy.claim_target(idle=2, buffered=150, waiting=0, left=None) == 0
    assert policy.claim_target(idle=2, buffered=1, waiting=150, left=None) == 1 + (200 - 151)


def test_claim_target__refills_the_buffer_only_once_it_is_down_to_half() -> None:
    policy = warmed(2, 0.0002)  # room for 200
    assert policy.claim_target(idle=0, buffered=101, waiting=0, left=None) == 0
    assert policy.claim_target(idle=0, buffered=60, waiting=41, left=None) == 0  # waiting counts too
    assert policy.claim_target(idle=0, buffered=100, waiting=0, left=None) == 100


def test_claim_target__never_more_than_the_worker_may_still_claim() -> None:
    policy = ClaimAhead(1)  # warming up: the idle child and 4 ahead
    assert policy.claim_target(idle=1, buffered=0, waiting=0, left=None) == 1 + 4
    assert policy.claim_target(idle=1, buffered=0, waiting=0, left=2) == 2
    assert policy.claim_target(idle=1, buffered=0, waiting=0, left=0) == 0


def test_claim_target__the_first_long_job_stops_claiming_ahead() -> None:
    policy = ClaimAhead(1)
    policy.record(3600.0)

    assert policy.claim_target(idle=1, buffered=0, waiting=0, left=None) == 1


# -- how many to a child at once ----------------------------------------------------------------


def test_batch_size__one_at_a_time_while_warming_up_or_for_jobs_of_batch_below_or_more() -> None:
    assert ClaimAhead(2, finished=WARMUP - 1, average=0.0001).batch_size(idle=2, buffered=100) == 1
    assert warmed(2, BATCH_BELOW).batch_size(idle=2, buffered=100) == 1


def test_batch_size__an_even_share_of_the_buffer_per_idle_child() -> None:
    assert warmed(4, 0.0001).batch_size(idle=4, buffered=9) == 3  # rounded up


def test_batch_size__at_most_batch_work_seconds_of_jobs() -> None:
    assert warmed(1, 0.001).batch_size(idle=1, buffered=200) == int(BATCH_WORK / 0.001)


def test_batch_size__at_least_one() -> None:
    assert warmed(4, 0.0001).batch_size(idle=4, buffered=0) == 1


# -- how far ahead a worker declares (worker/ledger.py) ------------------------------------------


def test_declare_ahead__two_batches_per_child() -> None:
    assert ClaimAhead(3).declare_ahead() == 2 * 3  # warming up: jobs go one at a time
    assert warmed(2, 0.01).declare_ahead() == 2 * 2  # 10 ms jobs: one per batch, 10 buffered per child
    # No-op jobs: each child's batch is its share of the buffer, so the whole buffer is declared.
    assert warmed(2, 0.0001).declare_ahead() >= warmed(2, 0.0001).buffer_size()


# -- jobs flow control holds -----------------------------------------------------------------------


def test_gated_buffer_size__short_jobs_hold_a_few_slots_per_child_not_the_whole_buffer() -> None:
    # 0.1 s of 0.1 ms jobs would be the whole MAX_CLAIM buffer: every key's slot in one worker.
    policy = warmed(2, 0.0001)

    assert policy.buffer_size() == MAX_CLAIM
    assert policy.gated_buffer_size() == 2 * GATED_AHEAD_PER_CHILD


def test_gated_buffer_size__is_never_more_than_the_plain_buffer() -> None:
    assert warmed(2, 1.0).gated_buffer_size() == 0  # long jobs: nothing claimed ahead
    assert ClaimAhead(2).gated_buffer_size() == min(PREFETCH_FACTOR * 2, 2 * GATED_AHEAD_PER_CHILD)


# -- mixed queues ---------------------------------------------------------------------------------


def test_mixed__one_long_job_among_short_ones_stops_claiming_ahead_and_batching() -> None:
    from django_jobs.worker.claim_ahead import RECENT

    policy = warmed(2, 0.001)
    assert policy.buffer_size() > 0 and policy.batch_size(2, 100) > 1

    policy.record(1.0)  # a one-second job: the average moves a tenth of the way, to ~0.1 s…
    policy.average = 0.001  # …but even were it still short, a job claimed ahead could wait a second
    assert (policy.buffer_size(), policy.batch_size(2, 100)) == (0, 1)
    assert policy.claim_target(idle=1, buffered=0, waiting=0, left=None) == 1  # the idle child only

    for _ in range(RECENT - 1):
        policy.record(0.001)
    assert policy.buffer_size() == 0  # still within the last RECENT jobs
    policy.record(0.001)
    assert policy.buffer_size() > 0 and policy.batch_size(2, 100) > 1


def test_mixed__a_job_just_under_the_prefetch_line_is_not_long() -> None:
    policy = warmed(2, 0.001)
    policy.record(PREFETCH_BELOW * 0.99)
    assert policy.since_long is None and policy.buffer_size() > 0
