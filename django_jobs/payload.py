"""Checks that job arguments are JSON that comes back unchanged, so a job sees what was enqueued."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NoReturn

from .conf import jobs_settings
from .exceptions import InvalidJobArguments, InvalidPayload, PayloadTooLarge
from .text import a_or_an

if TYPE_CHECKING:
    from .registry import JobDefinition

_HINTS = {
    "datetime": "pass value.isoformat() and parse it in the job",
    "date": "pass value.isoformat() and parse it in the job",
    "time": "pass value.isoformat() and parse it in the job",
    "timedelta": "pass value.total_seconds()",
    "Decimal": "pass str(value) and rebuild it with Decimal() in the job",
    "UUID": "pass str(value)",
    "tuple": "pass a list",
    "set": "pass a sorted list",
    "frozenset": "pass a sorted list",
    "bytes": "pass a base64 string",
}


_NUL = "\x00"
# Valid JSON, but PostgreSQL's jsonb rejects \u0000: the INSERT would fail, and abort the caller's
# transaction, with an error that names neither the job nor the argument.
_NUL_HINT = "a NUL character (\\x00), which PostgreSQL can't store in JSON; strip it"


#: How deep lists and dicts may nest in arguments and results. Deeper ones (and ones that contain
#: themselves) would exhaust Python's recursion limit: in enqueue(), or later in the worker.
MAX_DEPTH = 100


def _problem(value: Any, path: str, depth: int = 0) -> str | None:
    """Describe the first part of ``value`` that JSON would change, or None when it round-trips."""
    if isinstance(value, str):
        return f"{path} contains {_NUL_HINT}" if _NUL in value else None
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"{path} is {value!r}, which JSON can't represent"
        return None
    if isinstance(value, (list, dict)) and depth >= MAX_DEPTH:
        return (
            f"{path} nests lists or dicts more than {MAX_DEPTH} levels deep (or contains itself); "
            f"pass a flatter structure"
        )
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = _problem(item, f"{path}[{i}]", depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has the key {key!r} ({type(key).__name__}); JSON object keys are strings"
            if _NUL in key:
                return f"{path} has the key {key!r}, which contains {_NUL_HINT}"
            problem = _problem(item, f"{path}[{key!r}]", depth + 1)
            if problem:
                return problem
        return None
    kind = type(value).__name__
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        hint = "pass its primary key (obj.pk) and load it in the job"
    else:
        hint = _HINTS.get(kind, "convert it to str, int, float, bool, None, list or dict")
    return f"{path} is {a_or_an(kind)}, which doesn't survive a JSON round trip; {hint}"


def _not_utf8(value: Any) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return True
    return False


_SURROGATE_HINT = (
    "a lone surrogate (such as os.fsdecode() makes of a file name's undecodable bytes), which "
    "isn't valid UTF-8; decode the bytes with errors='replace', or pass os.fsencode(value) as "
    "base64"
)


def _surrogate(value: Any, path: str) -> str | None:
    """Describe the first string in ``value`` (already plain JSON) that UTF-8 can't encode."""
    if isinstance(value, str):
        return f"{path} contains {_SURROGATE_HINT}" if _not_utf8(value) else None
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = _surrogate(item, f"{path}[{i}]")
            if problem:
                return problem
    elif isinstance(value, dict):
        for key, item in value.items():
            if _not_utf8(key):
                return f"{path} has the key {key!r}, which contains {_SURROGATE_HINT}"
            problem = _surrogate(item, f"{path}[{key!r}]")
            if problem:
                return problem
    return None


def json_problem(value: Any, what: str) -> str | None:
    """Describe why ``value`` can't be stored as JSON unchanged, or None when it can."""
    return _problem(value, what)


def _tuples_as_lists(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        return value  # _problem() says it nests too deep
    if isinstance(value, (tuple, list)):
        return [_tuples_as_lists(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {key: _tuples_as_lists(item, depth + 1) for key, item in value.items()}
    return value


def storable_result(value: Any) -> tuple[Any, str | None]:
    """A job's return value as it is stored, and why it can't be (None when it can).

    Tuples (a NamedTuple too) are stored as lists, as Django's own Tasks backends store them. Any
    other value JSON would change (a datetime, a set, NaN, a dict with int keys) can't be stored:
    the caller stores no result and says why.
    """
    problem = _problem(value, "the return value")
    if problem is None:
        return value, None
    value = _tuples_as_lists(value)
    problem = _problem(value, "the return value")
    return (None, problem) if problem else (value, None)


def check_json(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise InvalidPayload naming the first argument that isn't plain JSON."""
    for i, value in enumerate(args):
        problem = _problem(value, f"positional argument {i}")
        if problem:
            raise InvalidPayload(f"Can't enqueue {name!r}: {problem}.")
    for key, value in kwargs.items():
        if _NUL in key:
            raise InvalidPayload(f"Can't enqueue {name!r}: the argument name {key!r} contains {_NUL_HINT}.")
        problem = _problem(value, f"argument {key!r}")
        if problem:
            raise InvalidPayload(f"Can't enqueue {name!r}: {problem}.")


def check_utf8(name: str, args: list[Any], kwargs: dict[str, Any]) -> NoReturn:
    """Raise InvalidPayload naming the first argument (or argument name) that isn't valid UTF-8.

    The slow path: enqueue() first encodes the whole JSON text at once, and only calls this to
    say which argument failed.
    """
    for i, value in enumerate(args):
        problem = _surrogate(value, f"positional argument {i}")
        if problem:
            raise InvalidPayload(f"Can't enqueue {name!r}: {problem}.")
    for key, value in kwargs.items():
        if _not_utf8(key):
            raise InvalidPayload(f"Can't enqueue {name!r}: the argument name {key!r} contains {_SURROGATE_HINT}.")
        problem = _surrogate(value, f"argument {key!r}")
        if problem:
            raise InvalidPayload(f"Can't enqueue {name!r}: {problem}.")
    raise InvalidPayload(f"Can't enqueue {name!r}: its arguments aren't valid UTF-8.")


def payload_size(args: list[Any], kwargs: dict[str, Any]) -> int:
    """Bytes of the arguments as compact UTF-8 JSON (as stored, not as ``\\uXXXX`` escapes)."""
    return len(json.dumps([args, kwargs], separators=(",", ":"), ensure_ascii=False).encode())


# One encoder for every call: json.dumps() with options builds a new JSONEncoder each time.
# ensure_ascii=False: the text is what PostgreSQL receives (as UTF-8), so encoding it once gives
# both the payload's size in bytes and the check for lone surrogates, which UTF-8 can't encode
# (escaped as \udcff, jsonb would refuse them with an error that aborts the caller's transaction).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _dump(value: Any) -> str:
    return _encode(value)


def encode_arguments(
    definition: JobDefinition, args: list[Any], kwargs: dict[str, Any], limit: int | None = None
) -> tuple[str, str]:
    """Check arguments the way a worker will need them; return them as JSON text (args, kwargs).

    Raises InvalidJobArguments when they don't bind to the job's signature, InvalidPayload when
    they aren't JSON that comes back unchanged, PayloadTooLarge over ``limit`` bytes (default
    ``MAX_PAYLOAD_BYTES``).
    """
    try:
        definition.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidJobArguments(
            f"Can't enqueue {definition.name!r}: {exc}. Its signature is "
            f"{definition.func.__name__}{definition.signature}."
        ) from None
    check_json(definition.name, args, kwargs)
    # (Most calls leave one of the two empty.)
    args_json = _dump(args) if args else "[]"
    kwargs_json = _dump(kwargs) if kwargs else "{}"
    limit = int(jobs_settings.MAX_PAYLOAD_BYTES) if limit is None else limit
    try:
        # In UTF-8, as stored: "é" is 2 bytes, not the 6 of its "\u00e9" escape.
        size = len(args_json.encode()) + len(kwargs_json.encode()) + 3  # as the JSON text [args,kwargs]
    except UnicodeEncodeError:
        check_utf8(definition.name, args, kwargs)
    if size > limit:
        raise PayloadTooLarge(
            f"Can't enqueue {definition.name!r}: its arguments are {size:,} bytes of JSON, over the "
            f"{limit:,}-byte limit. Store the data in a table and pass its id, or raise "
            f'DJANGO_JOBS["MAX_PAYLOAD_BYTES"].'
        )
    return args_json, kwargs_json


def validate_arguments(definition: JobDefinition, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Raise InvalidJobArguments or InvalidPayload unless enqueue() would accept these arguments."""
    encode_arguments(definition, list(args), dict(kwargs))
