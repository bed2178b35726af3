"""``manage.py runjobs``: option validation, ``--queue`` and ``--max-jobs``, run in this process."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "--concurrency must be at least 1, not 0."),
        (["--concurrency", "-2"], "--concurrency must be at least 1, not -2."),
        (["--concurrency", "x"], "--concurrency takes a whole number, not 'x'."),
        (["--concurrency", "1.5"], "--concurrency takes a whole number, not '1.5'."),
        (["--max-jobs", "-1"], "--max-jobs must be at least 1, not -1."),
        (["--max-jobs", "0"], "--max-jobs must be at least 1, not 0."),
        (["--max-jobs", "many"], "--max-jobs takes a whole number, not 'many'."),
        (["--grace", "-1"], "--grace takes a finite number of seconds >= 0, not '-1'."),
        (["--grace", "nan"], "--grace takes a finite number of seconds >= 0, not 'nan'."),
        (["--grace", "soon"], "--grace takes seconds, not 'soon'."),
        (["--queue", ""], "--queue needs a queue name."),
        (["--queue", " , "], "--queue needs a queue name."),
        (["--queue", "q" * 101], f"--queue: queue is 101 characters long, over the limit of 100: {'q' * 40!r}… would be cut short."),
        (["--queue", "nul\x00"], "--queue: queue 'nul\\x00' contains a NUL character (\\x00), which PostgreSQL can't store."),
        (["--worker-id", "  "], "--worker-id can't be empty."),
        (["--due-within", "30"], "--due-within applies only with --burst: a worker without it waits anyway."),
        (["--burst", "--due-within", "soon"], "--due-within takes seconds, not 'soon'."),
        (["--burst", "--due-within", "-1"], "--due-within takes a finite number of seconds >= 0, not '-1'."),
    ],
)
def test_runjobs__bad_option_is_a_command_error_saying_what_is_wrong(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as info:
        call_command("runjobs", *args)

    assert str(info.value) == message
