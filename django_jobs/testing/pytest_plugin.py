"""pytest plugin of django-jobs: the ``enqueued_jobs`` fixture.

Loaded automatically where django-jobs is installed (a ``pytest11`` entry point). With plugin
autoloading off, add ``-p django_jobs.testing.pytest_plugin`` or, in a conftest.py,
``pytest_plugins = ["django_jobs.testing.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .capture import EnqueuedJobs


@pytest.fixture
def enqueued_jobs(db: None) -> Iterator[EnqueuedJobs]:
    """The jobs the test enqueues (``assert_enqueued``, ``assert_not_enqueued``) and ``run()``."""
    from .capture import EnqueuedJobs

    jobs = EnqueuedJobs()
    yield jobs
    jobs.stop()
