"""Helpers shared by the tests, bench/ and docs/screenshots.py; no tests here.

``procs`` starts and watches real ``runjobs`` processes; ``pgcluster`` runs a throwaway
PostgreSQL (stdlib only: tests/run.py imports it before any virtualenv exists); ``tcpproxy`` is a
TCP proxy that loses replies; ``factories`` builds Job rows; ``scheduler_race`` is a script
(one racer of the scheduler race test), run as a subprocess. ``cli`` runs ``manage.py jobs``
through ``call_command``.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
