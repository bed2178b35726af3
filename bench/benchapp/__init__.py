"""The benchmark's jobs: a no-op, a latency probe, and flow control's limited jobs."""
