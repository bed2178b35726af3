"""A module nothing imports: importing it leaves a file at $DJANGO_JOBS_TRIPWIRE.

test_backend checks that a worker given a row named ``tests.testapp.tripwire.run`` doesn't import
it: a row's name is data, never a path to import.
"""

from __future__ import annotations

import os
from pathlib import Path

if os.environ.get("DJANGO_JOBS_TRIPWIRE"):
    Path(os.environ["DJANGO_JOBS_TRIPWIRE"]).write_text("imported\n")


def run() -> None:
    """What a row would name."""
