"""One racer for tests/process/test_scheduler.py: run the scheduler service in a loop on a fast virtual clock.

``python tests/support/scheduler_race.py START END GO_FILE SPEED NAME SKEW``

Once Django is set up, a racer creates ``GO_FILE.NAME.ready`` and waits for GO_FILE, which the
test writes when every racer is ready: it holds REAL_START, a wall-clock time. Virtual time is
then ``START + (wall time - REAL_START) * SPEED`` (held at START until REAL_START), plus a random
offset of up to ±SKEW seconds on every call, as if each process's clock were a few seconds off
and drifting. All racers share START, REAL_START and SPEED, so they reach each tick together. The
loop ends once virtual time is past END; ticks after END are never asked for.
Needs DJANGO_SETTINGS_MODULE and DATABASE_URL.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.utils import timezone

    from django_jobs.services import ServiceContext
    from django_jobs.services.scheduler import Scheduler

    start, end = datetime.fromisoformat(argv[0]), datetime.fromisoformat(argv[1])
    go, speed, name, skew = Path(argv[2]), float(argv[3]), argv[4], float(argv[5])
    Path(f"{go}.{name}.ready").touch()
    deadline = time.monotonic() + 120
    while not go.exists():
        if time.monotonic() > deadline:
            print(f"racer {name}: no {go} after 120 s", flush=True)
            return 1
        time.sleep(0.01)  # polling for the go file, the condition we wait on
    real_start = float(go.read_text())
    rng = random.Random(name)
    service = Scheduler(ServiceContext(using="default", worker_id=name, clock=timezone.now))
    last = end + timedelta(seconds=1)
    runs = 0
    while True:
        elapsed = max(0.0, time.time() - real_start)
        now = start + timedelta(seconds=elapsed * speed + rng.uniform(-skew, skew))
        service.run(min(now, last))
        runs += 1
        if now > end + timedelta(seconds=skew):
            break
    print(f"racer {name} finished after {runs} runs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
