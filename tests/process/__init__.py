"""Process tests: real ``runjobs`` subprocesses, signals, private clusters and namespaces."""
