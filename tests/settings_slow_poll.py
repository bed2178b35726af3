"""tests.settings with a poll interval so long that a worker picking a job up quickly was woken."""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import DJANGO_JOBS

POLL_INTERVAL = 120.0
DJANGO_JOBS = {**DJANGO_JOBS, "POLL_INTERVAL": POLL_INTERVAL}
