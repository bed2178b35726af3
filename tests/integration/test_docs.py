"""Every ```python sample in README.md and docs/**/*.md runs, against the test settings and app.

The convention for writers:

- A page's ```python blocks run in order in one namespace, a module of its own
  (``docs_samples.<page>``), so a later block can use what an earlier one defined. Blocks
  indented inside a list item count too.
- A block whose first line is ``# not run: <reason>`` is skipped (a settings file, a view of
  the example project, a shell session...). The reason is required. The docs site leaves that
  line out (docs/conf.py).
- After the blocks ran, the ``test_*`` functions the page defined are called, their arguments
  filled from pytest fixtures by name (``client``, ``enqueued_jobs``, ``settings``...), each in
  a savepoint rolled back afterwards, with an empty ``mail.outbox`` and its
  ``pytest.mark.urls`` applied (other marks are ignored); the test methods of the
  ``unittest.TestCase`` classes it defined run the same way (with ``setUpTestData``, ``setUp``
  and ``tearDown``, without class-level setup). So a sample test is a real test.
- Samples run inside a test transaction on the test database (``django_db``), with
  tests/settings.py: ``tests.testapp`` and ``example_project.shop`` are installed, and TASKS
  uses django_jobs.backend with the queues "default" and "emails".
- On Django 5.2, ``django.tasks`` is the django-tasks backport (same API), so samples written
  for Django 6 run on both.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
import types
import unittest
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.test import SimpleTestCase

from tests.support import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if "_build" not in p.parts]

_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
NOT_RUN = "# not run:"


@dataclass
class Sample:
    path: Path
    line: int  # 1-based line of the first line of code
    code: str

    @property
    def skip_reason(self) -> str | None:
        first = self.code.lstrip("\n").split("\n", 1)[0].strip()
        if not first.startswith(NOT_RUN):
            return None
        reason = first[len(NOT_RUN):].strip()
        if not reason:
            pytest.fail(f"{self.where}: `{NOT_RUN}` needs a reason after the colon")
        return reason

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def python_samples(path: Path) -> Iterator[Sample]:
    """The ```python (or ~~~python) blocks of a Markdown file, dedented."""
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = match["indent"], match["fence"], match["lang"].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        if lang in ("python", "py", "python3"):
            yield Sample(path, i + 2, textwrap.dedent("\n".join(body)))
        i = j + 1


def _module_name(path: Path) -> str:
    relative = path.relative_to(REPO).with_suffix("")
    return "docs_samples." + re.sub(r"\W", "_", "_".join(relative.parts))


def _alias_django_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Django 5.2 has the Tasks framework only as the django-tasks backport: the docs show
    # Django 6's import paths, which these names make work on both.
    if django.VERSION >= (6, 0):
        return
    import django_tasks
    import django_tasks.exceptions
    import django_tasks.signals

    monkeypatch.setitem(sys.modules, "django.tasks", django_tasks)
    monkeypatch.setitem(sys.modules, "django.tasks.exceptions", django_tasks.exceptions)
    monkeypatch.setitem(sys.modules, "django.tasks.signals", django_tasks.signals)
    monkeypatch.setattr(django, "tasks", django_tasks, raising=False)


def _run_test_function(func: Any, request: pytest.FixtureRequest) -> None:
    """Call a sample's test function as a test of its own: fixtures by name, its urls marker,
    an empty outbox, and its database writes rolled back afterwards."""
    fixtures = {p: request.getfixturevalue(p) for p in inspect.signature(func).parameters}
    for mark in getattr(func, "pytestmark", []):
        if mark.name == "urls":
            request.getfixturevalue("settings").ROOT_URLCONF = mark.args[0]
    mail.outbox = []
    with transaction.atomic():
        func(**fixtures)
        transaction.set_rollback(True)
    request.getfixturevalue("settings").ROOT_URLCONF = settings.ROOT_URLCONF


def _run_defined_tests(module: types.ModuleType, request: pytest.FixtureRequest, page: str) -> None:
    for name, value in list(vars(module).items()):
        if getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(value) and name.startswith("test"):
            _run_test_function(value, request)
        elif isinstance(value, type) and issubclass(value, unittest.TestCase):
            for method in unittest.defaultTestLoader.getTestCaseNames(value):
                _run_test_method(value, method)


def _run_test_method(cls: type[unittest.TestCase], method: str) -> None:
    """Run one test method of a sample's TestCase inside this test's transaction.

    Not through unittest's runner: TestCase's class setup and teardown manage transactions and
    connections of their own, which would end pytest-django's.
    """
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


def test_every_page_is_found() -> None:
    assert REPO / "README.md" in PAGES
    assert any(p.name == "testing.md" for p in PAGES)


def test_python_samples__indented_blocks_and_other_languages(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n- item\n\n  ```python\n  # not run: because\n  y = 2\n  ```\n\n"
        "```console\n$ ls\n```\n~~~py\nz = 3\n~~~\n"
    )
    samples = list(python_samples(page))
    assert [(s.line, s.code.strip()) for s in samples] == [
        (2, "x = 1"), (8, "# not run: because\ny = 2"), (16, "z = 3"),
    ]
    assert [s.skip_reason for s in samples] == [None, "because", None]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_samples_run(
    path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = [s for s in python_samples(path) if s.skip_reason is None]
    if not samples:
        pytest.skip("no runnable python samples")
    _alias_django_tasks(monkeypatch)
    module = types.ModuleType(_module_name(path))
    module.__file__ = str(path)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    # The page's module stands for one of the reader's that every process imports at startup (a
    # tasks.py), as enqueue() of a task defined in it requires.
    django_settings = request.getfixturevalue("settings")
    jobs = getattr(django_settings, "DJANGO_JOBS", {})
    django_settings.DJANGO_JOBS = {**jobs, "IMPORTS": [*jobs.get("IMPORTS", []), module.__name__]}
    for sample in samples:
        # Blank lines in front keep the page's line numbers in tracebacks.
        source = "\n" * (sample.line - 1) + sample.code
        try:
            code = compile(source, str(path), "exec", dont_inherit=True)
            exec(code, module.__dict__)
        except Exception as exc:
            raise AssertionError(
                f"the sample at {sample.where} failed: {type(exc).__name__}: {exc}\n"
                f"(mark it `{NOT_RUN} <reason>` if it can't run in the test suite)"
            ) from exc
    _run_defined_tests(module, request, str(path.relative_to(REPO)))
