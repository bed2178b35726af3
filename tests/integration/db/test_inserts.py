"""db/inserts.py: jobs written in one statement, a unique_key already active keeping out its twin."""

from __future__ import annotations

import pytest

from django_jobs.db.inserts import insert_jobs
from django_jobs.models import Job

pytestmark = pytest.mark.django_db

NAME = "tests.testapp.jobs.record"


def test_insert_jobs__sets_the_ids_of_the_jobs_it_wrote() -> None:
    batch = [Job(name=NAME, args=["a"]), Job(name=NAME, args=["b"])]

    assert insert_jobs(batch, "default") == [True, True]

    assert [Job.objects.get(pk=job.pk).args for job in batch] == [["a"], ["b"]]


def test_insert_jobs__a_unique_key_is_written_once_while_its_job_is_active() -> None:
    first = Job(name=NAME, unique_key="k")
    assert insert_jobs([first], "default") == [True]

    batch = [Job(name=NAME, unique_key="k"), Job(name=NAME, unique_key="other"), Job(name=NAME, unique_key="other")]
    assert insert_jobs(batch, "default") == [False, True, False]

    assert batch[0].pk is None and batch[2].pk is None
    assert sorted(Job.objects.values_list("unique_key", flat=True)) == ["k", "other"]
