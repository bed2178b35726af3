#!/usr/bin/env python3
"""Run the benchmark of issue 7: ``python3 bench/run.py [--scale S] [--runs N] [--json PATH]``.

Needs only Python 3.11+, like ``tests/run.py``, whose bootstrap it reuses: it creates or reuses
``.venv``, chooses a PostgreSQL the same way (``DATABASE_URL``; else 127.0.0.1:5432 when it
answers; else a throwaway cluster, stopped afterwards), then runs ``bench/harness.py`` in the
venv with your arguments. ``--help`` lists them; docs/performance.md says what each section
measures.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from example_project import _bootstrap  # noqa: E402  (stdlib only, on purpose)
from tests import run as tests_run  # noqa: E402  (stdlib only, on purpose)


def main(args: list[str]) -> int:
    # Until the harness runs, SIGTERM unwinds through chosen_database(), which stops a cluster.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        python = _bootstrap.ensure_venv("dev")
        with tests_run.chosen_database(python, binaries_always=False) as env:
            return tests_run.run_child([str(python), "-m", "bench.harness", *args], env)
    except (tests_run.pgcluster.PostgresClusterError, _bootstrap.BootstrapError) as exc:
        print(f"bench/run.py: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    _bootstrap.require_python()
    sys.exit(main(sys.argv[1:]))
