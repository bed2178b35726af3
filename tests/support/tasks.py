"""Helpers for tests of Django's Tasks framework on django-jobs (tests/testapp/tasks.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.testapp import tasks

needs_task_options = pytest.mark.skipif(
    not tasks.TASK_TAKES_OPTIONS, reason="@task(**options) needs Django 6.1+ or django-tasks"
)


def module_level(func: Callable[..., Any]) -> Callable[..., Any]:
    """Make ``func`` look module-level: Django accepts only those as tasks; tests define theirs inline."""
    func.__qualname__ = func.__name__
    return func
