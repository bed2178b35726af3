"""tests.settings for a worker whose spans the tracing tests read (tests/process/test_tracing.py):
the OpenTelemetry SDK writes each finished span to the file named by $DJANGO_JOBS_TEST_SPANS."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.support.tracing import SPANS_FILE_VARIABLE, export_to_file

# A project would set its provider up where its process starts (see docs/how-to/tracing.md); in
# the settings module the worker, its fork server and its children all get it.
export_to_file(os.environ[SPANS_FILE_VARIABLE])
