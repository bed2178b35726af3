"""Test helpers: assert what your code enqueued, and run enqueued jobs inline in the test.

    from django_jobs.testing import capture_jobs

    with capture_jobs() as jobs:
        client.post("/checkout/", {"cart": 3})
    jobs.assert_enqueued(send_receipt, kwargs={"order_id": 1})
    jobs.run()

With pytest, the ``enqueued_jobs`` fixture (django_jobs.testing.pytest_plugin) is a
``capture_jobs()`` around the whole test. See docs/how-to/testing.md.

Importing this package imports no model (the pytest plugin in it loads before Django is set up);
the names below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .capture import INLINE_WORKER_ID, EnqueuedJobs, capture_jobs, job_name

__all__ = ["INLINE_WORKER_ID", "EnqueuedJobs", "capture_jobs", "job_name"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import capture

        return getattr(capture, name)
    raise AttributeError(f"module 'django_jobs.testing' has no attribute {name!r}")
