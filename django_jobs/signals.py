"""Signals for alerting and metrics. Default logging receivers live in log.py."""

from __future__ import annotations

from django.dispatch import Signal

# use_caching: each is sent (or checked with has_listeners) once per job, on the hot paths of
# enqueue() and of the worker's main loop; Django then keeps each sender's receivers in a dict,
# dropped on connect() and disconnect(), instead of filtering the whole list on every call.

#: A job row was written. Sent in the enqueueing process with ``job`` (the Job instance); the
#: transaction that wrote it may still roll back.
job_enqueued = Signal(use_caching=True)

#: A worker handed a claimed job to a child process. Sent in the worker's main process with
#: ``job_id``, ``name``, ``attempt``, ``worker_id``.
job_started = Signal(use_caching=True)

#: An attempt ended. Sent in the worker's main process with ``job_id``, ``name``, ``attempt``,
#: ``worker_id``, ``status`` (the job's new status), ``outcome`` (succeeded, failed, retry,
#: stopped, timeout, lost, handed_back), ``duration`` (seconds) and ``error`` (a dict or None).
job_finished = Signal(use_caching=True)
