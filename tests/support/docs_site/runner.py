"""Run one docs page's samples as a test of the generated project (its test_docs_page.py).

tests/integration/test_docs.py copies this file into the project it made with
``startproject``, with ``docs_samples.py`` next to it, and runs pytest there once per page,
naming the page in ``DOCS_PAGE`` (and how to show it in ``DOCS_PAGE_SHOWN``).

The page's samples without a file name run in order in one module, inside a test
transaction (``django_db``) that is rolled back. Then the ``test_*`` functions they defined
are called, their arguments filled from pytest fixtures by name (``client``,
``enqueued_jobs``, ``settings``...), each in a savepoint rolled back afterwards, with an empty
``mail.outbox`` and its ``pytest.mark.urls`` applied (other marks are ignored), and with the
database blocked, as pytest-django blocks it, unless it has the ``django_db`` mark or a
fixture that needs ``db``. The test methods of the ``unittest.TestCase`` classes they defined
run the same way (with ``setUpTestData``, ``setUp`` and ``tearDown``, without class-level
setup).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
import sys
import types
import unittest
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.test import SimpleTestCase
from docs_samples import page_code, python_samples

PAGE = os.environ.get("DOCS_PAGE", "")
SHOWN = os.environ.get("DOCS_PAGE_SHOWN", PAGE)
# The project files the page's samples wrote ("shop/views.py"), imported first: Django imports
# only some of them (jobs.py, tasks.py) by itself.
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences",
                     "django_db_serialized_rollback"}
FILES = [f for f in os.environ.get("DOCS_PAGE_FILES", "").split(",") if f]


def _may_use_database(func: Any, request: pytest.FixtureRequest) -> bool:
    """Whether pytest-django would let this test reach the database: a ``django_db`` mark, or
    a fixture that asks for ``db`` (``enqueued_jobs`` does), however indirectly."""
    if any(mark.name == "django_db" for mark in getattr(func, "pytestmark", [])):
        return True
    seen: set[str] = set()
    todo = list(inspect.signature(func).parameters)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            for definition in request._fixturemanager.getfixturedefs(name, request.node) or ():
                todo.extend(definition.argnames)
    return bool(seen & DATABASE_FIXTURES)


def _run_test_function(func: Any, request: pytest.FixtureRequest) -> None:
    fixtures = {p: request.getfixturevalue(p) for p in inspect.signature(func).parameters}
    for mark in getattr(func, "pytestmark", []):
        if mark.name == "urls":
            request.getfixturevalue("settings").ROOT_URLCONF = mark.args[0]
    mail.outbox = []
    blocker = request.getfixturevalue("django_db_blocker")
    may_use_database = _may_use_database(func, request)
    with transaction.atomic():
        # In the reader's suite a test without the mark can't reach the database: nor here.
        # (block() blocks at once; the context manager it returns lifts it.)
        with contextlib.nullcontext() if may_use_database else blocker.block():
            func(**fixtures)
        transaction.set_rollback(True)
    request.getfixturevalue("settings").ROOT_URLCONF = settings.ROOT_URLCONF


def _run_test_method(cls: type[unittest.TestCase], method: str) -> None:
    # Not through unittest's runner: TestCase's class setup and teardown manage transactions
    # and connections of their own, which would end pytest-django's.
    mail.outbox = []
    with transaction.atomic():
        setup_data = getattr(cls, "setUpTestData", None)
        if setup_data is not None:
            setup_data()
        case = cls(method)
        if isinstance(case, SimpleTestCase):
            case.client = case.client_class()
        case.setUp()
        try:
            getattr(case, method)()
        finally:
            case.tearDown()
            case.doCleanups()
        transaction.set_rollback(True)


def _run_defined_tests(module: types.ModuleType, request: pytest.FixtureRequest) -> None:
    for name, value in list(vars(module).items()):
        if getattr(value, "__module__", None) != module.__name__:
            continue
        where = f"the test {name}() defined on {SHOWN}"
        try:
            if inspect.isfunction(value) and name.startswith("test"):
                _run_test_function(value, request)
            elif isinstance(value, type) and issubclass(value, unittest.TestCase):
                for method in unittest.defaultTestLoader.getTestCaseNames(value):
                    where = f"the test {name}.{method}() defined on {SHOWN}"
                    _run_test_method(value, method)
        except Exception as exc:
            raise AssertionError(f"{where} failed: {type(exc).__name__}: {exc}") from exc


@pytest.mark.skipif(not PAGE, reason="no DOCS_PAGE: nothing to run (the database warm-up)")
@pytest.mark.django_db
def test_page(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path(PAGE)
    module = types.ModuleType("docs_page_" + re.sub(r"\W", "_", SHOWN))
    module.__file__ = str(path)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for file in FILES:
        try:
            importlib.import_module(file.removesuffix(".py").replace("/", "."))
        except Exception as exc:
            raise AssertionError(
                f"{file}, written from the samples of {SHOWN} headed `# {file}`, failed to "
                f"import: {type(exc).__name__}: {exc}"
            ) from exc
    for sample in page_code(list(python_samples(path))):
        try:
            exec(compile(sample.padded(), str(path), "exec", dont_inherit=True), module.__dict__)
        except Exception as exc:
            raise AssertionError(
                f"the sample at {SHOWN}:{sample.line} failed: {type(exc).__name__}: {exc}"
            ) from exc
    _run_defined_tests(module, request)
