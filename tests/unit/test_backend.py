"""backend.py without a database: registering tasks as jobs, their options, the system checks, the status map."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.core import checks
from django.test import override_settings

from django_jobs.backend import STATUS_MAP, JobsBackend, JobsTask, registered_task, task_options
from django_jobs.exceptions import InvalidJobOptions
from django_jobs.models import JobStatus
from django_jobs.registry import _tasks_use_jobs_backend, registry
from tests.support.tasks import module_level, needs_task_options
from tests.testapp import tasks

try:
    from django.tasks import TaskResultStatus, task
    from django.tasks.exceptions import InvalidTask
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import TaskResultStatus, task  # type: ignore[no-redef]
    from django_tasks.exceptions import InvalidTaskError as InvalidTask  # type: ignore[no-redef]


class SubclassedBackend(JobsBackend):
    pass


def _check(params: dict[str, Any], **settings: Any) -> list[str]:
    tasks_setting = {"jobs": {"BACKEND": "django_jobs.backend.JobsBackend", **params}}
    with override_settings(TASKS=tasks_setting, **settings):
        return [m.id for m in JobsBackend("jobs", {"BACKEND": "", **params}).check() if m.id]


def test_register__a_task_is_a_job_named_by_its_module_path() -> None:
    definition = registry.lookup("tests.testapp.tasks.add")
    assert registered_task(definition.name) is tasks.add
    assert definition.queue == "default"
    assert isinstance(tasks.add, JobsTask)


def test_register__a_using_copy_doesnt_replace_the_registered_task() -> None:
    tasks.fail.using(queue_name="emails", priority=5)
    assert registered_task("tests.testapp.tasks.fail") is tasks.fail
    assert registry.lookup("tests.testapp.tasks.fail").max_attempts == 2


def test_register__a_context_taking_task_is_checked_without_its_context() -> None:
    definition = registry.lookup("tests.testapp.tasks.with_context")
    assert list(definition.signature.parameters) == ["label"]


def test_register__plain_jobs_are_not_tasks() -> None:
    assert registered_task("tests.testapp.jobs.record") is None
    assert registered_task("no.such.job") is None


def test_autodiscover__imports_tasks_modules_only_when_tasks_use_jobs_backend() -> None:
    ours = {"default": {"BACKEND": "django_jobs.backend.JobsBackend"}}
    subclass = {"default": {"BACKEND": "tests.unit.test_backend.SubclassedBackend"}}
    other = {"default": {"BACKEND": "no.such.Backend"}}
    with override_settings(TASKS=ours):
        assert _tasks_use_jobs_backend()
    with override_settings(TASKS=subclass):
        assert _tasks_use_jobs_backend()
    with override_settings(TASKS=other):
        assert not _tasks_use_jobs_backend()
    with override_settings(TASKS={}):
        assert not _tasks_use_jobs_backend()


def test_task_options__set_the_job_definitions_retries_timeout_and_backoff() -> None:
    definition = registry.lookup("tests.testapp.tasks.fail")
    assert definition.max_attempts == 2
    assert definition.backoff is not None and definition.backoff.base == 0.05
    assert registry.lookup("tests.testapp.tasks.sleep_forever").timeout == 0.5
    assert registry.lookup("tests.testapp.tasks.fail_fatally").dont_retry == (KeyError,)


def test_task_options__above_task_is_refused_with_where_to_put_it() -> None:
    with pytest.raises(InvalidJobOptions, match="put it below"):
        task_options(max_attempts=2)(tasks.add)


def test_task_options__a_bad_value_is_an_invalid_task_naming_it() -> None:
    def bad_attempts() -> None: ...

    with pytest.raises(InvalidTask, match="max_attempts must be at least 1"):
        task(task_options(max_attempts=0)(module_level(bad_attempts)))


def test_register__a_task_annotated_to_return_what_json_cannot_hold_is_refused() -> None:
    def stamp() -> datetime: ...

    with pytest.raises(InvalidTask, match="its return annotation says it returns datetime"):
        task(module_level(stamp))


def test_register__a_task_may_be_annotated_to_return_a_tuple_which_django_stores_as_a_list() -> None:
    def halves() -> tuple[int, int]: ...

    assert task(module_level(halves)).func is halves


@needs_task_options
def test_task_kwargs__reach_the_job_definition_and_the_row() -> None:
    definition = registry.lookup("tests.testapp.tasks.with_task_options")
    assert (definition.max_attempts, definition.timeout) == (4, 30)


@needs_task_options
def test_task_kwargs__conflicting_with_task_options_are_refused() -> None:
    def twice() -> None: ...

    with pytest.raises(InvalidTask, match="sets max_attempts twice"):
        task(max_attempts=3)(task_options(max_attempts=5)(module_level(twice)))


def test_enqueue__a_queue_not_in_queues_is_refused_by_django() -> None:
    with pytest.raises(InvalidTask, match="nope"):
        tasks.add.using(queue_name="nope")


def test_status_map__covers_every_status_with_djangos_four() -> None:
    assert set(STATUS_MAP) == set(JobStatus)
    assert set(STATUS_MAP.values()) == set(TaskResultStatus)


def test_check__a_good_configuration_is_silent() -> None:
    assert _check({"QUEUES": ["default", "emails"]}) == []


def test_check__queues_given_as_a_string() -> None:
    assert _check({"QUEUES": "default"}) == ["django_jobs.E202"]


def test_check__options_are_refused() -> None:
    assert _check({"OPTIONS": {"DATABASE": "default"}}) == ["django_jobs.E203"]


def test_check__django_jobs_missing_from_installed_apps() -> None:
    apps = ["django.contrib.contenttypes", "django.contrib.auth", "tests.testapp"]
    assert _check({}, INSTALLED_APPS=apps) == ["django_jobs.E201"]


def test_check__runs_with_djangos_system_checks() -> None:
    bad = {"default": {"BACKEND": "django_jobs.backend.JobsBackend", "QUEUES": "x"}}
    with override_settings(TASKS=bad):
        ids = [m.id for m in checks.run_checks()]
    assert "django_jobs.E202" in ids
