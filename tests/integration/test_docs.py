"""Every ```python sample in README.md and docs/**/*.md runs in a project a reader could have.

Not in the test settings: once per session a project is made with ``startproject mysite``
and ``startapp shop``, given the names the docs use (tests/support/docs_site/shop/, an
``Order``, ``shop.jobs.send_receipt``...), django-jobs in ``INSTALLED_APPS``, and the run's
PostgreSQL. Each page then runs in a copy of it, in a pytest process of its own:

- A sample whose first line is a file name, ``# shop/jobs.py``, is that file: it is written
  into the copy before Django starts (samples naming the same file are joined, in order), so
  the page's other samples import it as ``shop.jobs``. Line numbers in it are the page's.
- A sample whose first line is ``# not run: <reason>`` is skipped; keep these rare (settings
  fragments, signatures, shell sessions). The docs site leaves that line out (docs/conf.py).
- The other samples run in order in one namespace, then the tests they define run: see
  tests/support/docs_site/runner.py.

A failure names the page, the sample's line and the error. ``--only docs`` of tests/run.py
runs this file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import django
import psycopg
import pytest

from tests.support import REPO
from tests.support.docs_samples import (
    BadSample,
    Sample,
    page_code,
    project_files,
    python_samples,
)

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if "_build" not in p.parts]
SITE_FILES = REPO / "tests" / "support" / "docs_site"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/django_jobs"
TIMEOUT = 300

SETTINGS = '''

# Added by tests/integration/test_docs.py: what the docs tell a reader to add, and the database
# of the test run (its name with "_docs"; pytest-django makes "test_<that>").
import os
from urllib.parse import unquote, urlsplit

INSTALLED_APPS += ["django_jobs", "shop"{backport}]
_url = urlsplit(os.environ["DATABASE_URL"])
DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/") + "_docs",
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": _url.port or "",
    }}
}}
TASKS = {{"default": {{"BACKEND": "django_jobs.backend.JobsBackend", "QUEUES": ["default", "emails"]}}}}
'''

# Django 5.2 has the Tasks framework only as the django-tasks backport: the docs show Django 6's
# import paths, which these names make work on both (in settings: before any app is imported).
ALIAS_BACKPORT = '''
import sys

import django
import django_tasks
import django_tasks.exceptions
import django_tasks.signals

sys.modules["django.tasks"] = django_tasks
sys.modules["django.tasks.exceptions"] = django_tasks.exceptions
sys.modules["django.tasks.signals"] = django_tasks.signals
django.tasks = django_tasks
'''

URLS = '''from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("jobs/", include("django_jobs.urls")),
    path("shop/", include("shop.urls")),
]
'''

PYTEST_INI = """[pytest]
DJANGO_SETTINGS_MODULE = mysite.settings
addopts = -p no:cacheprovider --tb=short -q
"""


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO))


def _env(page: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "DJANGO_JOBS_TEST_SETTINGS")}
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL", DEFAULT_URL)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if page is not None:
        env["DOCS_PAGE"] = str(page)
        env["DOCS_PAGE_SHOWN"] = _shown(page)
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)


def _must(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        pytest.fail(f"making the docs' project: {what} failed (exit {result.returncode}):\n"
                    f"{result.stdout}{result.stderr}", pytrace=False)


def make_site(root: Path) -> Path:
    """A new ``startproject`` with the shop app, ready for pytest; return its folder."""
    site = root / "site"
    site.mkdir()
    env = _env()
    _must(_run(["-m", "django", "startproject", "mysite", str(site)], root, env), "startproject")
    _must(_run(["-m", "django", "startapp", "shop"], site, env), "startapp shop")
    for source in (SITE_FILES / "shop").iterdir():
        shutil.copy(source, site / "shop" / source.name)
    backport = ', "django_tasks"' if django.VERSION < (6, 0) else ""
    with (site / "mysite" / "settings.py").open("a") as settings_file:
        settings_file.write(SETTINGS.format(backport=backport))
        if backport:
            settings_file.write(ALIAS_BACKPORT)
    (site / "mysite" / "urls.py").write_text(URLS)
    shutil.copy(SITE_FILES / "runner.py", site / "test_docs_page.py")
    shutil.copy(REPO / "tests" / "support" / "docs_samples.py", site / "docs_samples.py")
    (site / "pytest.ini").write_text(PYTEST_INI)
    _must(_run(["manage.py", "makemigrations", "shop", "-v", "0"], site, env), "makemigrations")
    # Creates and migrates the test database once; each page's run reuses it (--reuse-db).
    _must(_run(["-m", "pytest", "--create-db"], site, env), "creating the test database")
    return site


def _drop_test_database() -> None:
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("DATABASE_URL", DEFAULT_URL))
    name = "test_" + url.path.lstrip("/") + "_docs"
    with psycopg.connect(url._replace(path="/postgres").geturl(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _readable(output: str, site: Path) -> str:
    """pytest's report of the page; or, when the project didn't start (a file sample that
    doesn't import breaks ``django.setup()``), the traceback's frames in the project and the
    error."""
    if "Traceback (most recent call last)" not in output or "= FAILURES =" in output:
        return output
    lines = output.rstrip().splitlines()
    kept = ["The project did not start:"]
    for i, line in enumerate(lines):
        if line.lstrip().startswith(f'File "{site}'):
            kept += lines[i:i + 2]
    return "\n".join([*kept, lines[-1]])


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    site = make_site(tmp_path_factory.mktemp("docs-site"))
    try:
        yield site
    finally:
        _drop_test_database()


def page_samples(path: Path) -> list[Sample]:
    try:
        samples = list(python_samples(path))
        for sample in samples:
            sample.skip_reason  # noqa: B018  (raises for a `# not run:` without a reason)
    except BadSample as exc:
        pytest.fail(f"{_shown(path)}: {exc}", pytrace=False)
    return samples


def test_every_page_is_found() -> None:
    assert REPO / "README.md" in PAGES
    assert any(p.name == "testing.md" for p in PAGES)


# Names that exist only in this repository's test suite: a reader can't paste them.
TEST_SUITE_NAMES = re.compile(r"\btests\.testapp\b|[\"']tests\.\w|\bdocs_samples\b")


@pytest.mark.parametrize("path", PAGES, ids=[_shown(p) for p in PAGES])
def test_pages_name_nothing_of_the_test_suite(path: Path) -> None:
    found = [f"{_shown(path)}:{number}: {line.strip()}"
             for number, line in enumerate(path.read_text().split("\n"), 1)
             if TEST_SUITE_NAMES.search(line)]
    assert not found, "use the reader's names (shop.jobs.send_receipt):\n" + "\n".join(found)


def test_python_samples__indented_blocks_files_and_other_languages(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n- item\n\n  ```python\n  # not run: because\n  y = 2\n  ```\n\n"
        "```console\n$ ls\n```\n~~~py\nz = 3\n~~~\n"
        "```python\n# shop/jobs.py\na = 1\n```\n```python\n# shop/jobs.py (more)\nb = 2\n```\n"
    )
    samples = list(python_samples(page))
    assert [(s.line, s.code.strip()) for s in samples] == [
        (2, "x = 1"), (8, "# not run: because\ny = 2"), (16, "z = 3"),
        (19, "# shop/jobs.py\na = 1"), (23, "# shop/jobs.py (more)\nb = 2"),
    ]
    assert [s.skip_reason for s in samples] == [None, "because", None, None, None]
    assert [s.line for s in page_code(samples)] == [2, 16]
    [(name, text)] = project_files(samples).items()
    assert name == "shop/jobs.py"
    assert text.split("\n")[18:24] == ["# shop/jobs.py", "a = 1", "", "", "# shop/jobs.py (more)", "b = 2"]


def test_python_samples__a_not_run_without_a_reason_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\n# not run:\nx = 1\n```\n")
    [sample] = python_samples(page)
    with pytest.raises(BadSample, match="line 2: `# not run:` needs a reason"):
        sample.skip_reason  # noqa: B018


@pytest.mark.parametrize("path", PAGES, ids=[_shown(p) for p in PAGES])
def test_samples_run(path: Path, docs_site: Path, tmp_path: Path) -> None:
    samples = page_samples(path)
    files = project_files(samples)
    if not files and not page_code(samples):
        pytest.skip("no runnable python samples")
    site = tmp_path / "site"
    shutil.copytree(docs_site, site, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    env = {**_env(path), "DOCS_PAGE_FILES": ",".join(files)}
    result = _run(["-m", "pytest", "--reuse-db", "test_docs_page.py"], site, env)
    if result.returncode != 0:
        written = "".join(f"\n  {name} is the page's sample(s); its line numbers are the page's"
                          for name in files)
        pytest.fail(
            f"{_shown(path)}: its samples failed in a new startproject site ({site}).{written}\n"
            f"(mark a sample `# not run: <reason>` only if no project could run it)\n\n"
            f"{_readable(result.stdout + result.stderr, site)}",
            pytrace=False,
        )
