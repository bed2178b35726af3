"""The benchmark of issue 7: ``python3 bench/run.py`` (see docs/performance.md)."""
