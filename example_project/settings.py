"""Settings of the django-jobs demo project, read from the environment (django-environ).

Every setting below has a demo-friendly default, so ``python3 example_project/demo.py``
runs with none set:

``DATABASE_URL``     default ``sqlite:///<repo>/var/demo.sqlite3``; e.g.
                     ``postgres://postgres@127.0.0.1:5432/django_jobs_demo``
``DEBUG``            default True (it is a demo)
``SECRET_KEY``       required when DEBUG is off; an insecure placeholder otherwise
``ALLOWED_HOSTS``    comma-separated, default ``localhost,127.0.0.1,[::1]``
``TIME_ZONE``        default ``UTC``
``EMAIL_URL``        default ``consolemail://`` (mails are printed); e.g.
                     ``smtp+tls://user:password@smtp.example.com:587``
``DEFAULT_FROM_EMAIL``
``STRIPE_API_KEY``, ``STRIPE_API_BASE``  for the Stripe sync job; empty by default
                     (``STRIPE_API_BASE`` lets it talk to stripe-mock or to the shop's fake
                     Stripe, ``example_project/shop/fake_stripe.py``, instead of Stripe)
``STRIPE_MAX_NETWORK_RETRIES``  retries the Stripe SDK makes within one attempt, default 2
``DJANGO_JOBS_METRICS_TOKEN``  the bearer token of ``/jobs/metrics``; unset by default
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # git-ignored: the SQLite file, the demo's admin password
VAR_DIR.mkdir(exist_ok=True)

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)

# Only a DEBUG demo may run on a key everyone can read in this file.
INSECURE_DEMO_SECRET_KEY = "django-insecure-demo-key-do-not-use-in-production"
SECRET_KEY = env.str(
    "SECRET_KEY", default=INSECURE_DEMO_SECRET_KEY if DEBUG else environ.Env.NOTSET
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_jobs",
    "example_project.shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "example_project.wsgi.application"

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'demo.sqlite3'}"),
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Email: EMAIL_BACKEND, EMAIL_HOST, ... from one URL. Keys django-environ leaves as None
# are skipped so Django's own defaults stay in force.
globals().update(
    {
        key: value
        for key, value in env.email_url("EMAIL_URL", default="consolemail://").items()
        if value is not None
    }
)
EMAIL_TIMEOUT = 10  # seconds; a job sending mail must not hang on a dead SMTP server
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="django-jobs demo <demo@example.com>")

STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)

# /jobs/metrics (example_project/urls.py) answers a bearer of this token; without it, only a
# logged-in staff user. See docs/how-to/monitoring.md.
DJANGO_JOBS: dict[str, object] = {
    "METRICS_TOKEN": env.str("DJANGO_JOBS_METRICS_TOKEN", default=None),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "{asctime} {levelname} {name} {message}", "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "django_jobs": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "example_project.shop": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
