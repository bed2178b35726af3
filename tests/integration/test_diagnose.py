"""diagnose.py reading pauses and workers from the database."""

from __future__ import annotations

import pytest

from django_jobs.diagnose import Reason, diagnose
from django_jobs.models import Pause, Worker
from tests.support.factories import JobFactory


def codes(reasons: list[Reason]) -> list[str]:
    return [r.code for r in reasons]


@pytest.mark.django_db
def test_diagnose__reads_pauses_and_workers_from_the_database() -> None:
    j = JobFactory(queue="reports")
    Pause.objects.pause_queue("reports", reason="deploy")

    assert codes(diagnose(j)) == ["paused_queue", "no_worker"]

    Pause.objects.resume_queue("reports")
    Worker.objects.create(worker_id="w1", hostname="h", pid=1, queues=["reports"], concurrency=1)
    assert codes(diagnose(j)) == ["imminent"]


def _running(job_id: int) -> None:
    from django_jobs.models import Job, JobStatus

    Job.objects.filter(id=job_id).update(status=JobStatus.RUNNING, worker_id="w1", attempts=1)


@pytest.mark.django_db
def test_diagnose__names_the_concurrency_limit_and_the_job_holding_it() -> None:
    from tests.testapp import jobs

    holder = jobs.sync_account.enqueue("acct_42")
    waiting = jobs.sync_account.enqueue("acct_42")
    _running(holder.id)

    (message,) = [r.message for r in diagnose(waiting) if r.code == "held"]
    assert message == f"Held by the concurrency limit `account:acct_42`: 1 of 1 running (job #{holder.id})."


@pytest.mark.django_db
def test_diagnose__a_sequence_blocked_by_a_dead_job() -> None:
    from django_jobs.models import Job, JobStatus
    from tests.testapp import jobs

    dead = jobs.apply_webhook.enqueue("c_9", 1)
    waiting = jobs.apply_webhook.enqueue("c_9", 2)
    Job.objects.filter(id=dead.id).update(status=JobStatus.DEAD)

    (message,) = [r.message for r in diagnose(waiting) if r.code == "held"]
    assert message == f"Sequence `customer:c_9` is blocked by dead job #{dead.id}."


@pytest.mark.django_db
def test_diagnose__a_rate_says_when_the_next_start_is() -> None:
    from django.utils import timezone

    from django_jobs.models import Start
    from tests.testapp import jobs

    Start.objects.bulk_create([Start(key="tests.testapp.jobs.rated", started_at=timezone.now()) for _ in range(5)])
    waiting = jobs.rated.enqueue(1)

    (message,) = [r.message for r in diagnose(waiting) if r.code == "held"]
    assert message.startswith("Rate `5/s` reached: next start in ")


@pytest.mark.django_db
def test_diagnose__an_unheld_keyed_job_is_not_held() -> None:
    from tests.testapp import jobs

    assert "held" not in codes(diagnose(jobs.sync_account.enqueue("free")))
