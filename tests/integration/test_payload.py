"""payload.py at run time: a stored row whose arguments are the wrong shape ends dead without running."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.testapp.models import SideEffect


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("args", {"label": "x"}, "not dict {'label': 'x'} and dict {}"),
        ("args", "ab", "not str 'ab' and dict {}"),
        ("args", None, "not NoneType None and dict {}"),
        ("kwargs", ["x"], "not list [] and list ['x']"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_run__a_row_whose_arguments_are_not_an_array_and_an_object_ends_dead_without_running(
    run_worker: Any, column: str, value: Any, shown: str
) -> None:
    # Spread as they were, {"label": "x"} would call record("label"), and "ab" record("a", "b").
    from django.db import connection

    from django_jobs.db import tables
    from django_jobs.models import Job, JobStatus
    from tests.support.factories import JobFactory

    job = JobFactory(name="tests.testapp.jobs.record")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {tables.TABLE} SET {column} = %s::jsonb WHERE id = %s", [json.dumps(value), job.pk])

    run_worker()

    row = Job.objects.get(pk=job.pk)
    assert (row.status, row.attempts) == (JobStatus.DEAD, 1)
    assert row.history[0]["error"]["class"] == "django_jobs.exceptions.InvalidPayload"
    assert f"the row's args must be a JSON array and its kwargs a JSON object, {shown}" in row.last_error
    assert not SideEffect.objects.exists()
