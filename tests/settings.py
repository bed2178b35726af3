"""Settings for the test suite: real PostgreSQL from DATABASE_URL (tests/run.py sets it)."""

from __future__ import annotations

import json
import os

import django
import environ

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"

DATABASES = {
    "default": environ.Env.db_url_config(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/django_jobs")
    )
}
DATABASES["default"].setdefault("TEST", {})
if os.environ.get("PYTEST_XDIST_WORKER"):
    DATABASES["default"]["TEST"]["NAME"] = f"test_django_jobs_{os.environ['PYTEST_XDIST_WORKER']}"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_jobs",
    "tests.testapp",
    "example_project.shop",
]
# tests/process/test_rolling_deploy.py: a worker "from before" the job tests.v2app defines.
if not os.environ.get("DJANGO_JOBS_TEST_OLD_CODE"):
    INSTALLED_APPS.append("tests.v2app")
# Django's Tasks framework on django-jobs (tests/test_backend.py, tests/testapp/tasks.py). Django
# 5.2 gets it from the django-tasks backport, an app of its own.
TASKS = {"default": {"BACKEND": "django_jobs.backend.JobsBackend", "QUEUES": ["default", "emails"]}}
if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DJANGO_JOBS = {"POLL_INTERVAL": 0.2}
# Subprocess tests tune timings (heartbeat, rescue window, grace) for the processes they start.
DJANGO_JOBS.update(json.loads(os.environ.get("DJANGO_JOBS_TEST_SETTINGS", "{}")))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_jobs": {"handlers": ["console"], "level": "INFO"}},
}
