"""payload.py: which arguments survive a JSON round trip, and what the error says when one doesn't."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import pytest

from django_jobs.exceptions import InvalidPayload
from django_jobs.payload import MAX_DEPTH, check_json, check_utf8, json_problem, payload_size
from tests.testapp.models import SideEffect


def problem(value: Any) -> str:
    with pytest.raises(InvalidPayload) as info:
        check_json("shop.send", [], {"data": value})
    return str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        None, True, False, 0, -5, 10**30, 1.5, -0.0, "", "text", "ünïcödé ✓",
        [], {}, [1, "a", None, [2.5, {"k": [True]}]], {"nested": {"list": [1, 2], "none": None}},
        OrderedDict(a=1),
    ],
)
def test_check_json__plain_json_passes(value: Any) -> None:
    check_json("shop.send", [value], {"kw": value})


@pytest.mark.parametrize(
    ("value", "kind", "hint"),
    [
        ((1, 2), "tuple", "pass a list"),
        ({1, 2}, "set", "pass a sorted list"),
        (frozenset({1}), "frozenset", "pass a sorted list"),
        (dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "datetime", "pass value.isoformat()"),
        (dt.date(2030, 1, 1), "date", "pass value.isoformat()"),
        (dt.timedelta(seconds=3), "timedelta", "pass value.total_seconds()"),
        (Decimal("1.10"), "Decimal", "pass str(value) and rebuild it with Decimal()"),
        (uuid.UUID(int=1), "UUID", "pass str(value)"),
        (b"raw", "bytes", "pass a base64 string"),
        (object(), "object", "convert it to str, int, float, bool, None, list or dict"),
        (1j, "complex", "convert it to str, int, float, bool, None, list or dict"),
    ],
)
def test_check_json__non_json_types_are_named_with_a_hint(value: Any, kind: str, hint: str) -> None:
    message = problem(value)

    article = "an" if kind == "object" else "a"
    assert f"Can't enqueue 'shop.send': argument 'data' is {article} {kind}, which doesn't survive a JSON round trip" in message
    assert hint in message


def test_check_json__model_instance_says_to_pass_its_primary_key() -> None:
    message = problem(SideEffect(pk=3, job_id=1))

    assert "argument 'data' is a SideEffect" in message
    assert "pass its primary key (obj.pk) and load it in the job" in message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_check_json__non_finite_floats_are_rejected(value: float) -> None:
    assert f"argument 'data' is {value!r}, which JSON can't represent" in problem(value)


@pytest.mark.parametrize(("key", "shown"), [(1, "1 (int)"), (None, "None (NoneType)"), ((1, 2), "(1, 2) (tuple)")])
def test_check_json__non_string_dict_keys_are_rejected(key: Any, shown: str) -> None:
    message = problem({key: "v"})

    assert f"argument 'data' has the key {shown}; JSON object keys are strings" in message


def test_check_json__names_the_path_to_a_nested_problem() -> None:
    message = problem({"items": [1, 2, {"when": dt.date(2030, 1, 1)}]})

    assert "argument 'data'['items'][2]['when'] is a date" in message


def test_check_json__names_positional_arguments_by_index() -> None:
    with pytest.raises(InvalidPayload, match=r"positional argument 1\[0\] is a tuple"):
        check_json("shop.send", [1, [(1,)]], {})


def test_check_json__reports_the_first_problem_only() -> None:
    with pytest.raises(InvalidPayload) as info:
        check_json("shop.send", [Decimal(1)], {"b": {2}})
    assert "positional argument 0 is a Decimal" in str(info.value)
    assert "set" not in str(info.value)


@pytest.mark.parametrize("value", ["a\x00b", {"k\x00": 1}])
def test_check_json__nul_characters_are_rejected(value: Any) -> None:
    # PostgreSQL's jsonb can't store U+0000: the INSERT would fail with an unrelated-looking error
    # and abort the caller's transaction.
    assert "NUL character" in problem(value)


def test_invalid_payload__is_also_a_value_error() -> None:
    with pytest.raises(ValueError):
        check_json("shop.send", [{1}], {})


def test_payload_size__is_the_byte_length_of_compact_json() -> None:
    args: list[Any] = [1, "ab"]
    kwargs: dict[str, Any] = {"x": [True, None]}

    assert payload_size(args, kwargs) == len(b'[[1,"ab"],{"x":[true,null]}]')


def test_payload_size__counts_non_ascii_text_as_utf8_bytes() -> None:
    # What the database stores (and the limit is about) is UTF-8, not \\uXXXX escapes.
    text = "é" * 100

    assert payload_size([text], {}) == len(b'[[""],{}]') + 2 * len(text)


def test_check_json__a_nul_in_an_argument_name_is_rejected() -> None:
    with pytest.raises(InvalidPayload, match=r"the argument name 'a\\x00' contains a NUL character"):
        check_json("shop.send", [], {"a\x00": 1})


def test_check_json__nesting_deeper_than_the_limit_is_rejected_naming_where() -> None:
    value: list[Any] = []
    for _ in range(MAX_DEPTH):
        value = [value]

    message = problem(value)

    assert f"argument 'data'{'[0]' * MAX_DEPTH} nests lists or dicts more than {MAX_DEPTH} levels deep" in message


@pytest.mark.parametrize("kind", [list, dict])
def test_json_problem__a_value_that_contains_itself_is_a_problem_not_a_recursion_error(kind: type) -> None:
    loop: Any = kind()
    if kind is list:
        loop.append(loop)
    else:
        loop["again"] = loop

    message = json_problem(loop, "the return value")

    assert message is not None and "(or contains itself)" in message


def test_check_utf8__names_the_argument_with_a_lone_surrogate() -> None:
    with pytest.raises(InvalidPayload, match=r"positional argument 1\[0\] contains a lone surrogate"):
        check_utf8("shop.send", ["fine", [os.fsdecode(b"report-\xff.csv")]], {})
