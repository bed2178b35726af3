"""Django settings of the benchmark: the bench database, django_jobs' defaults, quiet logs.

``BENCH_DATABASE_URL`` names the database (bench/harness.py sets it for itself and for the
workers it starts). ``DJANGO_JOBS`` is left at its defaults on purpose: the benchmark measures
``runjobs`` as deployed out of the box. Worker logs stop at WARNING, so every line in them is
something that went wrong; per-job INFO lines would also cost time a production deployment
may or may not pay.
"""

from __future__ import annotations

import os

import environ

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {
    "default": environ.Env.db_url_config(
        os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/django_jobs_bench")
    )
}
if "BENCH_CONN_MAX_AGE" in os.environ:  # section K's ORM writes with persistent connections
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["BENCH_CONN_MAX_AGE"])
INSTALLED_APPS = ["django_jobs", "bench.benchapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_jobs": {"handlers": ["console"], "level": "WARNING", "propagate": False}},
}
