"""Integration tests: PostgreSQL in this process (burst workers fork their children here)."""
