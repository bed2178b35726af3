"""``manage.py jobs`` through ``call_command``: its exit code and what it wrote, and a terminal to
answer its questions."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError


@dataclass
class Ran:
    """What one ``jobs`` subcommand did: its exit code, stdout, and stderr (with the error)."""

    code: int
    out: str
    err: str


class Terminal(io.StringIO):
    """Typed answers on a terminal: ``confirm()`` asks only when stdin is one."""

    def isatty(self) -> bool:
        return True


def jobs(*args: Any, stdin: io.StringIO | None = None) -> Ran:
    """Run ``manage.py jobs ARGS…`` in this process, as ``run_from_argv`` would report it."""
    out, err = io.StringIO(), io.StringIO()
    extra = {"stdin": stdin} if stdin is not None else {}
    try:
        call_command("jobs", *[str(a) for a in args], stdout=out, stderr=err, **extra)
    except CommandError as exc:
        err.write(str(exc))
        return Ran(exc.returncode, out.getvalue(), err.getvalue())
    return Ran(0, out.getvalue(), err.getvalue())
