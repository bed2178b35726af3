"""The benchmark's jobs: a no-op and a latency probe."""
