"""How subcommands print: plain-text tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

#: A cell longer than this is cut, so that a long name or error doesn't wrap every row.
CELL_MAX = 60


def cell(value: Any) -> str:
    """A table cell: one line, cut to CELL_MAX characters; "—" for nothing."""
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    text = " ".join(str(value).split())
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 1] + "…"


def table(command: BaseCommand, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write ``rows`` under ``headers`` in aligned columns, numbers to the right."""
    cells = [[cell(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[i], int) for row in rows) if rows else False
        for i in range(len(headers))
    ]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if numeric[i] else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths))
        ]
        return "  ".join(parts).rstrip()

    command.stdout.write(line(headers))
    for row in cells:
        command.stdout.write(line(row))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def write_json(command: BaseCommand, data: Any) -> None:
    """Write ``data`` as one JSON document (datetimes as ISO 8601, anything else odd as text)."""
    command.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=_default))
