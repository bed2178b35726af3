"""The gated claim against real PostgreSQL: limits hold, held jobs stay queued, sequences keep order."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs.db import gates
from django_jobs.db.claims import OutcomeWrite, record_outcomes
from django_jobs.lifecycle import Transition
from django_jobs.models import Job, JobStatus, Limit, Start
from django_jobs.registry import registry
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def claim(worker: str = "w1", want: int = 10, **kwargs: Any) -> list[int]:
    result = gates.claim_gated(
        "default", worker_id=worker, want=want, now=timezone.now(), limits=gates.limits_in_effect("default"),
        **kwargs,
    )
    return [row["id"] for row in result.rows]


def finish(*ids: int) -> None:
    Job.objects.filter(id__in=ids).update(status=JobStatus.SUCCEEDED, worker_id="", finished_at=timezone.now())


def test_concurrency__never_more_running_than_the_limit_across_claims() -> None:
    created = [jobs.limited_pair.enqueue() for _ in range(5)]
    assert created[0].concurrency_key == "tests.testapp.jobs.limited_pair"

    first = claim("w1")
    second = claim("w2")

    assert first == [created[0].id, created[1].id]
    assert second == []  # the limit is full: nothing for the other worker
    assert Job.objects.filter(status=JobStatus.QUEUED).count() == 3  # held, not spent
    assert Job.objects.get(id=created[2].id).attempts == 0
    finish(first[0])
    assert claim("w2") == [created[2].id]


def test_concurrency__per_key_each_key_has_its_own_slot() -> None:
    a = [jobs.sync_account.enqueue("a") for _ in range(3)]
    b = [jobs.sync_account.enqueue(account_id="b") for _ in range(3)]
    assert {a[0].concurrency_key, b[0].concurrency_key} == {"account:a", "account:b"}

    assert sorted(claim()) == [a[0].id, b[0].id]
    assert claim() == []


def test_held_jobs_ahead_do_not_block_runnable_ones_behind() -> None:
    held = [jobs.sync_account.using(priority=10).enqueue("busy") for _ in range(50)]
    assert claim(want=1) == [held[0].id]
    other = jobs.sync_account.enqueue("free")

    assert claim(want=5) == [other.id]


def test_rate__starts_in_a_window_never_exceed_the_rate() -> None:
    created = [jobs.rated.enqueue(n) for n in range(8)]

    assert len(claim(want=8)) == 5
    assert claim(want=8) == []
    assert Start.objects.filter(key="tests.testapp.jobs.rated").count() == 5
    # The held ones wait for the window, with a time to wake up at.
    result = gates.claim_gated("default", worker_id="w", want=8, now=timezone.now(),
                               limits=gates.limits_in_effect("default"))
    assert result.rows == [] and result.next_start is not None
    assert 0 < (result.next_start - timezone.now()).total_seconds() <= 1.0
    assert Job.objects.filter(id__in=[j.id for j in created], status=JobStatus.QUEUED).count() == 3


def test_sequence__one_at_a_time_in_id_order_whatever_the_priority() -> None:
    first = jobs.apply_webhook.enqueue("c1", 1)
    second = jobs.apply_webhook.using(priority=100).enqueue("c1", 2)
    other = jobs.apply_webhook.enqueue("c2", 1)

    assert sorted(claim()) == sorted([first.id, other.id])
    assert claim() == []
    finish(first.id)
    assert claim() == [second.id]


def test_sequence__a_dead_job_blocks_until_retried() -> None:
    first = jobs.apply_webhook.enqueue("c1", 1)
    second = jobs.apply_webhook.enqueue("c1", 2)
    Job.objects.filter(id=first.id).update(status=JobStatus.DEAD, finished_at=timezone.now())

    assert claim() == []
    Job.objects.filter(id=first.id).retry()
    assert claim() == [first.id]
    finish(first.id)
    assert claim() == [second.id]


def test_sequence__stopped_never_blocks() -> None:
    first = jobs.apply_webhook.enqueue("c1", 1)
    second = jobs.apply_webhook.enqueue("c1", 2)
    Job.objects.filter(id=first.id).update(status=JobStatus.STOPPED, finished_at=timezone.now())
    assert claim() == [second.id]


def test_operator_limit_on_a_queue_holds_jobs_without_keys() -> None:
    created = [jobs.call_partner.enqueue() for _ in range(4)]
    Limit.objects.set("queue", "partner-api", concurrency=1, note="partner asked us to slow down")

    assert claim() == [created[0].id]
    assert claim() == []


def test_operator_limit_replaces_the_code_value() -> None:
    for _ in range(5):
        jobs.limited_pair.enqueue()
    Limit.objects.set("name", "tests.testapp.jobs.limited_pair", concurrency=3)
    assert len(claim()) == 3


def test_a_slot_frees_when_the_outcome_is_written() -> None:
    created = [jobs.limited_pair.enqueue() for _ in range(3)]
    running = claim("w1")
    job = Job.objects.get(id=running[0])
    now = timezone.now()
    record_outcomes("default", "w1", [OutcomeWrite(
        job.id, job.attempts, now,
        Transition(status=JobStatus.SUCCEEDED, history_entry={"attempt": 1, "outcome": "succeeded"}),
    )])
    assert Job.objects.get(id=job.id).status == JobStatus.SUCCEEDED
    assert claim("w2") == [created[2].id]


def test_keys_are_rendered_from_bound_arguments() -> None:
    positional = jobs.sync_account.enqueue("acct_1")
    keyword = jobs.sync_account.enqueue(account_id="acct_1", seconds=0)
    assert positional.concurrency_key == keyword.concurrency_key == "account:acct_1"
    assert Job.objects.get(id=positional.id).concurrency_key == "account:acct_1"
    many = jobs.sync_account.enqueue_many([["x"], {"account_id": "y"}])
    assert [j.concurrency_key for j in many] == ["account:x", "account:y"]
    assert list(Job.objects.filter(id__in=[j.id for j in many]).order_by("id")
                .values_list("concurrency_key", flat=True)) == ["account:x", "account:y"]


def test_claim__walks_the_keyed_index_past_many_held_jobs() -> None:
    Job.objects.bulk_create([
        Job(name="tests.testapp.jobs.sync_account", args=["busy"], concurrency_key="account:busy", priority=5)
        for _ in range(2000)
    ])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_jobs_job")
        params = {
            "now": timezone.now(), "queues": [], "paused_queues": [], "paused_names": [], "key_cursor": "",
            "sequence_cursor": "", "continue_names": [], "per_key": 4, "limited_queues": [],
            "limited_names": [],
        }
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + gates.CANDIDATES, params)
        plan = cursor.fetchone()[0]
    text = str(plan)
    assert "django_jobs_keyed_idx" in text
    assert "Seq Scan" not in text


def test_capture_runs_gated_jobs_inline() -> None:
    from django_jobs.testing import capture_jobs

    with capture_jobs() as captured:
        jobs.apply_webhook.enqueue("c1", 1)
        jobs.apply_webhook.enqueue("c1", 2)
        jobs.limited_pair.enqueue(0)
        ran = captured.run()
    assert len(ran) == 3
    assert all(j.status == JobStatus.SUCCEEDED for j in ran)


def test_rate_window_counts_starts_not_rows(settings: Any) -> None:
    created = [jobs.rated.enqueue(n) for n in range(6)]
    assert len(claim(want=10)) == 5
    # Pruning the started jobs doesn't reopen the window: the starts are logged apart.
    Job.objects.filter(status=JobStatus.RUNNING).delete()
    assert claim(want=10) == []
    assert gates.prune_starts("default", timezone.now() - timedelta(days=8)) == 0
    assert len(created) == 6


def test_sequence__continue_lets_later_jobs_pass_a_dead_one() -> None:
    first = jobs.apply_feed_item.enqueue("f1", 1)
    second = jobs.apply_feed_item.enqueue("f1", 2)
    Job.objects.filter(id=first.id).update(status=JobStatus.DEAD, finished_at=timezone.now())
    assert claim() == [second.id]
    # Retried, the dead one runs again, but not beside the one now running.
    Job.objects.filter(id=first.id).retry()
    assert claim() == []
    finish(second.id)
    assert claim() == [first.id]


def _succeeded(job: Job) -> OutcomeWrite:
    return OutcomeWrite(job.id, job.attempts, timezone.now(), Transition(
        status=JobStatus.SUCCEEDED, history_entry={"attempt": job.attempts, "outcome": "succeeded"}))


@pytest.mark.parametrize("downstream", [True, False], ids=["with-workflow-steps", "without"])
def test_handoff__the_outcome_starts_the_next_job_of_its_key_in_the_same_statement(downstream: bool) -> None:
    from django_jobs.db import claims

    first, second, third = (jobs.sync_account.enqueue("a") for _ in range(3))
    result = gates.claim_gated("default", worker_id="w1", want=5, now=timezone.now(),
                               limits=gates.limits_in_effect("default"))
    assert [r["id"] for r in result.rows] == [first.id] and result.rows[0]["handoff"] == "account:a"
    assert result.rows[0]["downstream"] is False
    first.refresh_from_db()

    synced = claims.sync("default", worker_id="w1", outcomes=[_succeeded(first)], limit=0, names=registry.names(),
                         now=timezone.now(), handoffs=[claims.Handoff(first.id, "account:a", first.name, "default", 1)],
                         downstream=downstream)

    assert synced.written == {first.id: "succeeded"}
    assert [(r["id"], r["gated"], r["handoff"]) for r in synced.claimed] == [(second.id, True, "account:a")]
    assert list(Job.objects.filter(status=JobStatus.RUNNING).values_list("id", flat=True)) == [second.id]
    assert Job.objects.get(id=third.id).status == JobStatus.QUEUED


def test_handoff__without_the_workflow_steps_runs_with_them_for_a_job_given_downstream_since_its_claim() -> None:
    from django_jobs.db import claims

    first, second = (jobs.sync_account.enqueue("a") for _ in range(2))
    gates.claim_gated("default", worker_id="w1", want=5, now=timezone.now(), limits=gates.limits_in_effect("default"))
    first.refresh_from_db()
    downstream = jobs.sync_account.using(after=[first]).enqueue("b")  # while it runs

    synced = claims.sync("default", worker_id="w1", outcomes=[_succeeded(first)], limit=0, names=registry.names(),
                         now=timezone.now(), handoffs=[claims.Handoff(first.id, "account:a", first.name, "default", 1)],
                         downstream=False)

    assert synced.written == {first.id: "succeeded"}
    assert synced.released == [downstream.id]
    assert [(r["id"], r["handoff"]) for r in synced.claimed] == [(second.id, "account:a")]


def test_handoff__not_while_the_key_runs_over_a_lowered_limit() -> None:
    from django_jobs.db import claims

    created = [jobs.limited_pair.enqueue(0) for _ in range(4)]
    running = claim("w1", want=5)
    assert len(running) == 2
    # The operator lowered the limit to 1 while two run: the first to end frees its slot for good.
    ended = Job.objects.get(id=running[0])
    synced = claims.sync("default", worker_id="w1", outcomes=[_succeeded(ended)], limit=0, now=timezone.now(),
                         names=registry.names(),
                         handoffs=[claims.Handoff(ended.id, ended.concurrency_key, ended.name, "default", 1)])
    assert synced.written == {ended.id: "succeeded"} and synced.claimed == []
    assert Job.objects.filter(id__in=[j.id for j in created], status=JobStatus.RUNNING).count() == 1


def test_claim_gated__a_sequence_head_is_claimed_with_use_tz_false() -> None:
    # The candidates' run_at comes back as microseconds since the epoch; under USE_TZ = False it
    # must become the naive local time the claim's clock is in, or comparing them raises.
    from django.test import override_settings

    queued = jobs.apply_webhook.enqueue("c1", 1)
    try:
        with override_settings(USE_TZ=False):
            connection.close()  # a new connection, with Django's naive timestamptz loader
            now = timezone.now()
            assert timezone.is_naive(now)
            claim = gates.claim_gated("default", worker_id="w-naive", want=1, now=now,
                                      limits=gates.limits_in_effect("default"))
            assert [row["id"] for row in claim.rows] == [queued.pk]
    finally:
        connection.close()
