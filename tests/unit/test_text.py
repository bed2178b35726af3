"""text.py: any string made storable in PostgreSQL's text and jsonb (no database)."""

from __future__ import annotations

import pytest

from django_jobs.text import a_or_an, duration, storable


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


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(7 * 86400, "7 days"), (86400, "1 day"), (36 * 3600, "36 hours"), (3600, "1 hour"), (120, "2 minutes"),
     (90, "90 seconds"), (1, "1 second"), (0, "0 seconds"), (0.5, "0.5 seconds")],
)
def test_duration__in_its_largest_whole_unit(seconds: float, words: str) -> None:
    assert duration(seconds) == words
