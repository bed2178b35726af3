"""text.py: any string made storable in PostgreSQL's text and jsonb (no database)."""

from __future__ import annotations

import pytest

from django_jobs.text import a_or_an, storable


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


@pytest.mark.parametrize(
    ("word", "expected"),
    [("object", "an object"), ("int", "an int"), ("set", "a set"), ("UUID", "a UUID"), ("Order", "an Order")],
)
def test_a_or_an__the_article_a_type_name_reads_with(word: str, expected: str) -> None:
    assert a_or_an(word) == expected
