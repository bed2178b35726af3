"""The package as users get it: build the wheel and sdist, check them, install the wheel into a
clean virtualenv, and use it from a new ``django-admin startproject`` project on SQLite.

Slow (about a minute: a build, a virtualenv, pip installing Django from the package index), so
marked ``slow``; tests/run.py runs it once, not in every leg.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

import django_jobs
from tests.support import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (importlib.util.find_spec("build") and importlib.util.find_spec("twine")),
        reason="needs build and twine (the release extra, in django-jobs[dev])",
    ),
]


def run(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command; fail the test with its output when it fails; return its stdout."""
    result = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
                    f"{result.stdout}\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, the wheel built from the sdist (so the sdist is complete)."""
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: build with this environment's setuptools instead of downloading one.
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, REPO)
    return out


def test_build__sdist_and_wheel_pass_twine_check(dist: Path) -> None:
    version = django_jobs.__version__
    wheel = dist / f"django_jobs-{version}-py3-none-any.whl"
    sdist = dist / f"django_jobs-{version}.tar.gz"
    assert wheel.exists() and sdist.exists(), sorted(p.name for p in dist.iterdir())
    output = run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    assert output.count("PASSED") == 2, output


def test_build__the_wheel_has_the_package_and_nothing_else(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "django_jobs/py.typed",
        "django_jobs/migrations/0001_initial.py",
        "django_jobs/management/commands/runjobs.py",
        "django_jobs/backend.py",
        "django_jobs/testing/pytest_plugin.py",
    ):
        assert needed in names
    assert any(n.startswith("django_jobs/templates/admin/") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "example_project/", "docs/"))]
    # pyproject.toml declares MIT; the licence's text travels with the wheel (setuptools' default
    # license-files pattern picks LICENSE up).
    assert [n for n in names if n.endswith(".dist-info/licenses/LICENSE")], names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pytest11]" in text and "django_jobs.testing.pytest_plugin" in text


JOBS_PY = '''
from django_jobs import job


@job
def greet(name: str) -> str:
    return f"hello {name}"
'''

SMOKE = '''
import json, os
from django.contrib.auth.models import User
from django.test import Client
from django.test.utils import setup_test_environment

from django_jobs.models import Job

setup_test_environment()  # lets the test client's "testserver" host in
step = os.environ["SMOKE_STEP"]
if step == "enqueue":
    from things.jobs import greet
    print(json.dumps({"id": greet.enqueue("wheel").pk}))
elif step == "check":
    job = Job.objects.get()
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(User.objects.get())
    from django.contrib import admin
    from django.urls import NoReverseMatch, reverse

    # Every list page of django-jobs' models in the admin, and the job's own page.
    urls = ["/admin/", "/admin/django_jobs/"]
    for model in admin.site._registry:
        if model._meta.app_label == "django_jobs":
            try:
                urls.append(reverse(f"admin:django_jobs_{model._meta.model_name}_changelist"))
            except NoReverseMatch:
                pass  # an admin page of another kind (an overview without a list)
    if Job in admin.site._registry:
        urls.append(reverse("admin:django_jobs_job_change", args=[job.pk]))
    pages = {url: client.get(url).status_code for url in urls}
    print(json.dumps({"status": job.status, "result": job.result, "pages": pages}))
'''


def test_wheel__works_in_a_new_project(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel)
    # The wheel alone, not this checkout: started from elsewhere, without our PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    code = "import django_jobs; print(django_jobs.__version__, django_jobs.__file__)"
    installed = run(python, "-c", code, cwd=tmp_path, env=env)
    assert installed.split()[0] == django_jobs.__version__
    assert str(venv) in installed.split()[1]

    project = tmp_path / "site"
    project.mkdir()
    run(venv / "bin" / "django-admin", "startproject", "mysite", project, env=env)
    manage = [python, project / "manage.py"]
    run(*manage, "startapp", "things", cwd=project, env=env)
    (project / "things" / "jobs.py").write_text(textwrap.dedent(JOBS_PY))
    settings = project / "mysite" / "settings.py"
    settings.write_text(settings.read_text().replace(
        "INSTALLED_APPS = [", 'INSTALLED_APPS = [\n    "django_jobs",\n    "things",'
    ))
    (project / "smoke.py").write_text(SMOKE)

    run(*manage, "migrate", "--noinput", cwd=project, env=env)
    run(*manage, "check", cwd=project, env=env)
    def smoke(step: str) -> dict[str, Any]:
        output = run(*manage, "shell", "-c", "exec(open('smoke.py').read())", cwd=project,
                     env={**env, "SMOKE_STEP": step})
        return json.loads(output.strip().splitlines()[-1])

    enqueued_id = smoke("enqueue")["id"]
    run(*manage, "runjobs", "--burst", "--concurrency", "1", cwd=project, env=env)
    report = smoke("check")
    assert (report["status"], report["result"]) == ("succeeded", "hello wheel")
    assert f"/admin/django_jobs/job/{enqueued_id}/change/" in report["pages"], report["pages"]
    assert set(report["pages"].values()) == {200}, report["pages"]
