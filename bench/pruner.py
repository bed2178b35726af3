"""Section L's pruner, in a process of its own: ``python -m bench.pruner CUTOFF MAX_ROWS [PACE]``.

It calls django_jobs' pruning service as a worker's ``Pruner`` does (``prune(using, now=…,
max_batches=20)``: up to 20 batches of ``PRUNE_BATCH`` rows per status, one bounded ``DELETE``
each), over and over without the worker's ``PRUNE_INTERVAL`` between calls, so that it deletes as
fast as the service can. ``now`` is CUTOFF (ISO 8601) plus the succeeded jobs' retention, so the
finished jobs up to CUTOFF are due and nothing newer is. It prints ``started`` once its first
call has returned, and stops when a line arrives on stdin, when it has deleted MAX_ROWS rows or
when nothing is left that is due; then it prints, as JSON, the Unix time and the running total
after each call. With PACE (rows per minute), each call deletes one batch per status and the
pruner waits after it for as long as keeps its deletions since it started at that pace: with the
service's 20 batches a call, it deleted 20,000 rows in a burst every 1.2 s and kept 1.27-1.32
million rows a minute, not the million asked.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime


def main(cutoff: datetime, max_rows: int, pace: float | None = None) -> dict[str, object]:
    import django

    django.setup()
    from django_jobs.conf import jobs_settings
    from django_jobs.services.prune import prune, retention

    keep = retention()["succeeded"]
    if keep is None:
        raise SystemExit("bench.pruner: succeeded jobs are kept forever here; nothing to prune")
    now = cutoff + keep
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()  # a line, or the end of stdin
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    began = time.time()
    calls: list[tuple[float, int]] = []
    total = 0
    while not stop.is_set() and total < max_rows:
        deleted = sum(prune(jobs_settings.DATABASE, now=now, max_batches=1 if pace else 20).values())
        total += deleted
        calls.append((time.time(), total))
        if len(calls) == 1:
            print("started", flush=True)
        if not deleted:
            break
        if pace:
            stop.wait(max(0.0, began + total / pace * 60 - time.time()))
    return {
        "began": began, "calls": calls, "deleted": total, "batch": int(jobs_settings.PRUNE_BATCH), "pace": pace,
    }


if __name__ == "__main__":
    found = main(datetime.fromisoformat(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else None)
    print(json.dumps(found), flush=True)
