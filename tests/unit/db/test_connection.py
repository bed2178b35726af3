"""db/connection.py: the small helpers every statement module uses."""

from __future__ import annotations

import json

import pytest

from django_jobs.db.connection import dump_json, json_value, placeholders


@pytest.mark.parametrize(("values", "expected"), [([1], "(%s)"), ([1, "a", None], "(%s, %s, %s)")])
def test_placeholders__one_per_value(values: list[object], expected: str) -> None:
    assert placeholders(values) == expected


def test_dump_json__is_compact_and_none_stays_null() -> None:
    assert dump_json({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"\\u00e9"}'
    assert json.loads(dump_json([]) or "") == []
    assert dump_json(None) is None


def test_json_value__text_as_is_and_values_as_json() -> None:
    assert json_value('{"a":1}') == '{"a":1}'
    assert json.loads(json_value({"a": 1})) == {"a": 1}
