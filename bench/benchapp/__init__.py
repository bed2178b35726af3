"""The benchmark's jobs: no-op, probe, section K's writer and sleeper, flow control's."""
