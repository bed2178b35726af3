"""text.py: any string made storable in PostgreSQL's text and jsonb (no database)."""

from __future__ import annotations

import pytest

from django_jobs.text import storable


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("plain ascii", "plain ascii"),
        ("naïve café ✓", "naïve café ✓"),
        ("a\x00b", "a\\x00b"),
        ("report-\udcff.csv", "report-\\udcff.csv"),
        ("\x00é\udcff", "\\x00é\\udcff"),
    ],
    ids=["ascii", "utf-8", "nul", "lone-surrogate", "both"],
)
def test_storable__escapes_only_what_postgresql_refuses(text: str, stored: str) -> None:
    assert storable(text) == stored
    storable(text).encode("utf-8")  # always encodable
