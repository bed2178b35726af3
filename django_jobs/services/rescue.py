"""Crash recovery: give jobs of dead workers back to the queue. Any worker may do it; no leader."""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction

from .. import lifecycle
from ..conf import jobs_settings
from ..db import claims, maintenance
from ..log import log_event
from ..models import Worker as WorkerRow

if TYPE_CHECKING:
    from . import ServiceContext


#: What a rescued attempt's error says happened to its worker.
SILENT = "the worker running this attempt stopped sending heartbeats"
UNLISTED = (
    "the live worker that claimed this attempt never listed it among its jobs "
    "(the claim's reply was lost on the way to it)"
)


def rescue(using: str, *, now: datetime, rescuer: str, own: Iterable[str] = ()) -> list[tuple[int, str, str]]:
    """Rescue jobs of workers silent for ``RESCUE_AFTER`` seconds (and of ``own`` ids at once);
    return (job id, name, new status) for each.

    The rows are locked, lifecycle decides each one's fate, and the fenced outcome write applies
    the decisions, in one transaction: a job its worker provably never started goes back without
    spending an attempt (lifecycle.never_started), the others count as lost (lifecycle.rescue,
    with ``MAX_LOST``). The lost workers' rows are locked first and deleted last, in the same
    transaction, so none of them declares a job in between (see maintenance.lock_stale_workers).
    """
    own = list(own)
    after = float(jobs_settings.RESCUE_AFTER)
    max_lost = jobs_settings.MAX_LOST or 0
    stale_before = now - timedelta(seconds=after)
    with transaction.atomic(using=using):
        maintenance.lock_stale_workers(using, stale_before=stale_before, worker_ids=own)
        lost = maintenance.lock_lost(
            using, now=now, stale_before=stale_before, worker_ids=own, unlisted_after=after
        )
        writes = [
            claims.OutcomeWrite(
                row.attempt.job_id, row.attempt.attempt, now,
                lifecycle.never_started(row.attempt, now, rescuer=rescuer,
                                        reason=UNLISTED if row.unlisted else lifecycle.NEVER_STARTED)
                if row.unstarted else
                lifecycle.rescue(row.attempt, UNLISTED if row.unlisted else SILENT, now,
                                 stop_requested=row.stop_requested, rescuer=rescuer,
                                 lost_before=row.lost_before, max_lost=max_lost),
                fence_worker=row.attempt.worker_id,
            )
            for row in lost
        ]
        written = claims.record_outcomes(using, rescuer, writes)
        stale = WorkerRow.objects.using(using).filter(last_heartbeat__lt=stale_before)
        stale.exclude(worker_id=rescuer).delete()
        WorkerRow.objects.using(using).filter(worker_id__in=[w for w in own if w != rescuer]).delete()
    rows = [(row.attempt.job_id, row.attempt.name, written[row.attempt.job_id])
            for row in lost if row.attempt.job_id in written]
    for job_id, name, status in rows:
        log_event("rescued", job=job_id, name=name, status=status, rescuer=rescuer)
    return rows


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache
def pid_namespace() -> str:
    """This process's kernel boot and PID namespace, ``"<boot id>/<namespace inode>"``; empty when
    either can't be read.

    Two workers on one host name (Docker ``--network host``, Kubernetes ``hostNetwork``) may each
    live in their own PID namespace, where the other's pid means nothing: only a worker with the
    same value here can tell from ``kill(pid, 0)`` that another has died.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{boot}/{namespace}" if boot else ""


def own_previous_ids(context: ServiceContext) -> list[str]:
    """Worker ids whose jobs this starting worker knows are orphaned, without waiting for rescue.

    Its own id (a restarted worker with a fixed ``--worker-id``, or a container whose pid is
    always the same), and the default ``host:pid`` ids of workers registered from this host, in
    this PID namespace since this boot, whose process no longer exists. A ``host:pid`` it can't
    place in its own namespace (a worker in another container sharing the host name, or one whose
    row is gone) is left to the heartbeat-based rescue: its pid may be alive where we can't see it.
    """
    host = socket.gethostname()
    ids = {context.worker_id}
    namespace = pid_namespace()
    if not namespace:
        return sorted(ids)
    rows = WorkerRow.objects.using(context.using).filter(hostname=host, pid_namespace=namespace)
    for worker_id in rows.values_list("worker_id", flat=True):
        name, _, pid = worker_id.rpartition(":")
        if name == host and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            ids.add(worker_id)
    return sorted(ids)


class Rescuer:
    """The rescue service each worker runs every quarter of ``RESCUE_AFTER`` (1 to 15 s)."""

    name = "rescue"

    def __init__(self, context: ServiceContext):
        self.context = context

    def run(self, now: datetime) -> float:
        rescue(self.context.using, now=now, rescuer=self.context.worker_id)
        return min(15.0, max(1.0, float(jobs_settings.RESCUE_AFTER) / 4))
