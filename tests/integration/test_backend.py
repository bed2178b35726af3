"""backend.py: Django's Tasks framework (``django.tasks``, or the django-tasks backport on 5.2) on
django-jobs. Tasks in tests/testapp/tasks.py; TASKS in tests/settings.py points at JobsBackend.

Workers run in-process (``run_worker``: real forked children) with a clock an hour or more ahead,
so a retry scheduled by one run is due for the next.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone

from django_jobs.backend import STATUS_MAP, JobsBackend
from django_jobs.exceptions import InvalidJobArguments, InvalidPayload
from django_jobs.models import Job, JobStatus
from tests.support.factories import JobFactory
from tests.support.tasks import module_level, needs_task_options
from tests.testapp import tasks
from tests.testapp.models import SideEffect

try:
    from django.tasks import TaskResultStatus, default_task_backend, task
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import TaskResultStatus, default_task_backend, task  # type: ignore[no-redef]
    from django_tasks.exceptions import TaskResultDoesNotExist  # type: ignore[no-redef]
    from django_tasks.signals import (  # type: ignore[no-redef]
        task_enqueued,
        task_finished,
        task_started,
    )

RunWorker = Callable[..., Any]


def at(hours: float) -> Callable[[], datetime]:
    moment = timezone.now() + timedelta(hours=hours)
    return lambda: moment


def row(result: Any) -> Job:
    return Job.objects.get(pk=int(result.id))


# -- options -----------------------------------------------------------------------------------


@pytest.mark.django_db
@needs_task_options
def test_task_kwargs__unique_key_applies_to_each_enqueue() -> None:
    def keyed() -> None: ...

    keyed_task = task(unique_key="one-keyed")(module_level(keyed))
    assert keyed_task.enqueue().id == keyed_task.enqueue().id


# -- enqueue -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_enqueue__writes_a_ready_job_and_returns_its_result() -> None:
    result = tasks.add.enqueue(1, 2)
    job = row(result)
    assert (job.name, job.args, job.kwargs) == ("tests.testapp.tasks.add", [1, 2], {})
    assert job.queue == "default"
    assert result.status == TaskResultStatus.READY
    assert result.backend == "default"
    assert result.enqueued_at == job.created_at
    assert (result.worker_ids, result.errors, result.attempts) == ([], [], 0)
    assert result.task is tasks.add
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


@pytest.mark.django_db
def test_enqueue__queue_and_priority_come_from_the_task_and_using() -> None:
    job = row(tasks.send_email.enqueue("a@example.com"))
    assert (job.queue, job.priority) == ("emails", 10)
    job = row(tasks.send_email.using(queue_name="default", priority=-5).enqueue("b@example.com"))
    assert (job.queue, job.priority) == ("default", -5)


@pytest.mark.django_db
def test_enqueue__run_after_defers_the_job() -> None:
    later = timezone.now() + timedelta(hours=2)
    job = row(tasks.add.using(run_after=later).enqueue(1, 1))
    assert job.run_at == later


@pytest.mark.django_db
def test_enqueue__tuples_become_lists_as_with_djangos_backends() -> None:
    subject: Any = ("x", "y")
    job = row(tasks.send_email.enqueue(to="a@example.com", subject=subject))
    assert job.kwargs == {"to": "a@example.com", "subject": ["x", "y"]}


@pytest.mark.django_db
def test_enqueue__arguments_that_dont_fit_the_signature_are_refused() -> None:
    with pytest.raises(InvalidJobArguments, match="tests.testapp.tasks.add"):
        tasks.add.enqueue(1)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_enqueue__a_value_json_would_change_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidPayload, match="isoformat"):
        tasks.send_email.enqueue(to="a@example.com", subject=timezone.now())  # type: ignore


@pytest.mark.django_db
def test_enqueue__unique_key_returns_the_active_jobs_result() -> None:
    first = tasks.singleton.enqueue()
    assert tasks.singleton.enqueue().id == first.id
    keyed = tasks.add.using(unique_key="sum-1-2")
    assert keyed.enqueue(1, 2).id == keyed.enqueue(1, 2).id != tasks.add.enqueue(1, 2).id


@pytest.mark.django_db
def test_enqueue__max_attempts_of_a_using_copy_is_the_rows() -> None:
    assert row(tasks.fail.using(max_attempts=7).enqueue()).max_attempts == 7
    assert row(tasks.fail.enqueue()).max_attempts == 2


@pytest.mark.django_db(transaction=True)
def test_aenqueue_and_aget_result__work_from_async_code() -> None:
    async def go() -> Any:
        result = await tasks.add.aenqueue(2, 3)
        fetched = await tasks.add.aget_result(result.id)
        # The ORM ran in asgiref's thread: close its connection there, or the test database
        # can't be dropped at the end of the run.
        await sync_to_async(connections.close_all)()
        return fetched

    result = asyncio.run(go())
    assert result.status == TaskResultStatus.READY
    assert result.args == [2, 3]


# -- get_result and the status mapping ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("status", list(JobStatus))
def test_get_result__maps_each_status(status: JobStatus) -> None:
    job = JobFactory(name="tests.testapp.tasks.add", args=[1, 2], status=status)
    result = default_task_backend.get_result(str(job.pk))
    assert result.status == STATUS_MAP[status]
    assert result.is_finished == (status in ("succeeded", "stopped", "dead"))


@pytest.mark.django_db
@pytest.mark.parametrize("result_id", ["999999999", "not-a-number", ""])
def test_get_result__unknown_ids_raise_task_result_does_not_exist(result_id: str) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)


@pytest.mark.django_db
def test_get_result__a_plain_job_is_not_a_task_result() -> None:
    job = JobFactory(name="tests.testapp.jobs.record")
    with pytest.raises(TaskResultDoesNotExist, match="not a task"):
        default_task_backend.get_result(str(job.pk))


@pytest.mark.django_db
def test_get_result__a_task_of_another_function_is_a_mismatch() -> None:
    result = tasks.add.enqueue(1, 2)
    with pytest.raises(Exception, match="Task does not match"):
        tasks.pair.get_result(result.id)


@pytest.mark.django_db
def test_get_result__the_task_is_as_enqueued() -> None:
    result = tasks.send_email.using(queue_name="default", priority=3).enqueue("a@example.com")
    fetched = tasks.send_email.get_result(result.id)
    assert (fetched.task.queue_name, fetched.task.priority) == ("default", 3)
    assert fetched.task.func is tasks.send_email.func


# -- running -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker__runs_a_task_and_its_result_has_the_return_value(run_worker: RunWorker) -> None:
    result = tasks.add.enqueue(2, 3)
    worker = run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.worker_ids == [worker.worker_id]
    assert result.attempts == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert SideEffect.objects.filter(label="add-task").count() == 1


@pytest.mark.django_db(transaction=True)
def test_worker__runs_async_tasks(run_worker: RunWorker) -> None:
    result = tasks.async_double.enqueue(21)
    run_worker()
    assert tasks.async_double.get_result(result.id).return_value == 42


@pytest.mark.django_db(transaction=True)
def test_worker__gives_a_context_taking_task_its_context(run_worker: RunWorker) -> None:
    result = tasks.with_context.using(queue_name="emails").enqueue("ctx")
    run_worker()
    value = tasks.with_context.get_result(result.id).return_value
    assert value == {"attempt": 1, "id": result.id, "queue": "emails"}


@pytest.mark.django_db(transaction=True)
def test_worker__normalises_the_return_value_like_django(run_worker: RunWorker) -> None:
    result = tasks.pair.enqueue()
    run_worker()
    assert tasks.pair.get_result(result.id).return_value == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_errors__one_per_failed_attempt_with_class_path_and_traceback(
    run_worker: RunWorker,
) -> None:
    result = tasks.fail.enqueue("x")
    worker = run_worker(clock=at(1))
    result.refresh()
    assert result.status == TaskResultStatus.READY  # retrying
    assert len(result.errors) == 1
    run_worker(clock=at(2))
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 2
    assert result.worker_ids == [worker.worker_id, worker.worker_id]
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"] * 2
    assert result.errors[0].exception_class is ValueError
    assert "task boom x" in result.errors[1].traceback
    assert "Traceback" in result.errors[1].traceback
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value


@pytest.mark.django_db(transaction=True)
def test_errors__dont_retry_fails_the_task_at_once(run_worker: RunWorker) -> None:
    result = tasks.fail_fatally.enqueue()
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == ["builtins.KeyError"]


@pytest.mark.django_db(transaction=True)
def test_errors__a_timeout_is_an_error_saying_so(run_worker: RunWorker) -> None:
    result = tasks.sleep_forever.enqueue()
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class_path == "django_jobs.exceptions.JobTimeout"
    assert "timeout" in error.traceback


@pytest.mark.django_db(transaction=True)
def test_stop__a_task_stopping_itself_is_failed_without_errors(run_worker: RunWorker) -> None:
    result = tasks.stop_self.enqueue("enough")
    run_worker()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors == []
    assert row(result).status == JobStatus.STOPPED


@pytest.mark.django_db(transaction=True)
@needs_task_options
def test_worker__task_kwargs_retry_the_task(run_worker: RunWorker) -> None:
    result = tasks.with_task_options.enqueue(1)
    assert row(result).max_attempts == 4
    run_worker(clock=at(1))
    run_worker(clock=at(2))
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert (result.return_value, result.attempts) == ("ok", 2)


@pytest.mark.django_db(transaction=True)
def test_worker__never_imports_a_path_it_reads_from_a_row(
    run_worker: RunWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tripwire = tmp_path / "imported"
    monkeypatch.setenv("DJANGO_JOBS_TRIPWIRE", str(tripwire))
    # A row naming a real module's function, as a task's row would: no worker may import it.
    job = JobFactory(name="tests.testapp.tripwire.run")
    run_worker()
    job.refresh_from_db()
    # Set aside for a worker that registers it; none does, so it ends dead after UNKNOWN_JOB_GRACE.
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 0) and job.parked_at is not None
    assert not tripwire.exists()
    assert "tests.testapp.tripwire" not in sys.modules


# -- Django's signals --------------------------------------------------------------------------


@pytest.fixture
def task_signals() -> Any:
    seen: list[tuple[str, Any, Any]] = []

    def receiver(name: str) -> Callable[..., None]:
        def receive(sender: Any, task_result: Any, **kwargs: Any) -> None:
            seen.append((name, task_result.id, task_result.status))

        return receive

    receivers = {
        task_enqueued: receiver("enqueued"),
        task_started: receiver("started"),
        task_finished: receiver("finished"),
    }
    for signal, receive in receivers.items():
        signal.connect(receive, sender=JobsBackend)
    yield seen
    for signal, receive in receivers.items():
        signal.disconnect(receive, sender=JobsBackend)


@pytest.mark.django_db(transaction=True)
def test_signals__enqueued_started_and_finished_are_sent(
    run_worker: RunWorker, task_signals: Any
) -> None:
    result = tasks.add.enqueue(1, 1)
    run_worker()
    assert task_signals == [
        ("enqueued", result.id, TaskResultStatus.READY),
        ("started", result.id, TaskResultStatus.RUNNING),
        ("finished", result.id, TaskResultStatus.SUCCESSFUL),
    ]


@pytest.mark.django_db(transaction=True)
def test_signals__finished_only_once_the_retries_are_over(
    run_worker: RunWorker, task_signals: Any
) -> None:
    result = tasks.fail.enqueue()
    run_worker(clock=at(1))
    run_worker(clock=at(2))
    assert [name for name, *_ in task_signals] == ["enqueued", "started", "started", "finished"]
    assert task_signals[-1] == ("finished", result.id, TaskResultStatus.FAILED)


@pytest.mark.django_db
def test_signals__plain_jobs_send_no_task_signals(task_signals: Any) -> None:
    from tests.testapp import jobs

    jobs.record.enqueue("plain")
    assert task_signals == []


@pytest.mark.django_db(transaction=True)
def test_signals__a_failing_receiver_is_logged_and_the_worker_carries_on(
    run_worker: RunWorker, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    task_started.connect(broken, sender=JobsBackend)
    try:
        result = tasks.add.enqueue(1, 2)
        run_worker()
    finally:
        task_started.disconnect(broken, sender=JobsBackend)
    assert tasks.add.get_result(result.id).return_value == 3
    assert "event=task_signal_failed" in caplog.text
