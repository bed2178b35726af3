"""Cron expressions and timezones: the only module that imports croniter (and cron-descriptor).

Expressions are the classic five fields, ``minute hour day-of-month month day-of-week``, read by
croniter's rules: when both day fields are restricted a day matching either one fires (Vixie
cron), and fire times are computed on the wall clock of the schedule's timezone. Daylight saving
follows croniter: a time the clocks skip fires at the first minute after the gap (02:30 on a
spring-forward night in Europe/Berlin fires at 03:00), and a time the clocks repeat fires in both
the summer-time and the winter-time hour (02:30 fires twice on the autumn night). See
docs/reference/schedules.md.

Every datetime taken is aware; every datetime returned is aware and in UTC. (Not in the schedule's
zone: Python never finds a wall time in a repeated hour equal to any datetime of another zone, so
ticks on the autumn night would not compare equal to themselves read back from the database.)
"""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo
from collections import deque
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterError, croniter

from .exceptions import InvalidCron

#: The five fields, in order, each with what it accepts (for error messages).
FIELDS: tuple[tuple[str, str], ...] = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31 (L is the last day of the month, 15W the weekday nearest the 15th)"),
    ("month", "1-12 or jan-dec"),
    ("day-of-week", "0-7 or sun-sat (0 and 7 are Sunday; 5#2 is the second Friday)"),
)
_NEEDS_FIVE = "a cron expression needs 5: " + " ".join(name for name, _ in FIELDS)

#: The @-nicknames croniter knows, written out: we store five fields whatever was typed.
NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# croniter's Jenkins-style H (hashed) and R (random) values differ per process unless given a
# seed; a schedule must mean the same minute on every worker, so they are refused.
_HASHED = re.compile(r"(?<![A-Za-z])[HR](?![A-Za-z])")

# A probe start for "does this ever fire": any fixed date works; this one is a leap year's start.
_PROBE_START = datetime(2024, 1, 1)


def parse(expression: str) -> str:
    """Return ``expression`` with single spaces between its five fields, or raise InvalidCron.

    An @-nickname (``@daily``) comes back as its five fields (``0 0 * * *``).
    """
    text = " ".join(str(expression).split())
    if not text:
        raise InvalidCron(f"The cron expression is empty; {_NEEDS_FIVE}, e.g. '5 0 * * *' (00:05 daily).")
    if text.startswith("@"):
        if text.lower() in NICKNAMES:
            return NICKNAMES[text.lower()]
        known = ", ".join(sorted(NICKNAMES))
        names = " ".join(name for name, _ in FIELDS)
        raise InvalidCron(f"{text!r} is not a cron nickname ({known}); write the five fields instead: {names}.")
    fields = text.split(" ")
    if len(fields) != len(FIELDS):
        raise InvalidCron(f"{text!r} has {len(fields)} field{'s' if len(fields) != 1 else ''}; {_NEEDS_FIVE}")
    for (name, accepts), value in zip(FIELDS, fields):
        if _HASHED.search(value):
            raise InvalidCron(
                f"{text!r}: the {name} field {value!r} uses H or R (hashed or random values), which "
                f"would mean a different time on each worker; write {accepts} instead."
            )
    try:
        croniter(text, _PROBE_START)
    except CroniterError:
        raise InvalidCron(_field_problem(text, fields)) from None
    try:
        croniter(text, _PROBE_START).get_next(datetime)
    except CroniterError:
        raise InvalidCron(
            f"{text!r} never fires: no date matches its day-of-month {fields[2]!r} in month "
            f"{fields[3]!r}. Check those two fields."
        ) from None
    return text


def _field_problem(text: str, fields: list[str]) -> str:
    """Say which field croniter refused, by trying each one alone with stars around it."""
    for index, ((name, accepts), value) in enumerate(zip(FIELDS, fields)):
        alone = ["*"] * len(FIELDS)
        alone[index] = value
        try:
            croniter(" ".join(alone), _PROBE_START)
        except CroniterError:
            return (
                f"{text!r}: the {name} field {value!r} is not valid; {name} takes {accepts}, "
                f"written as a value, a list (1,15), a range (1-5) or a step (*/15)."
            )
    return f"{text!r} is not a valid cron expression; {_NEEDS_FIVE}"


@functools.lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """Return the IANA timezone ``name`` (e.g. ``Europe/Berlin``) or raise InvalidCron."""
    if not name or not name.strip():
        raise InvalidCron("No timezone given; use an IANA name such as 'Europe/Berlin' or 'UTC'.")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    close = difflib.get_close_matches(name, zoneinfo.available_timezones(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise InvalidCron(
        f"{name!r} is not a timezone in the IANA database.{hint} Use a name such as "
        f"'Europe/Berlin', 'America/New_York' or 'UTC'."
    )


def _iterator(expression: str, timezone_name: str, start: datetime) -> croniter:
    if start.tzinfo is None:
        raise ValueError(f"{start!r} is naive; cron arithmetic needs an aware datetime.")
    local = start.astimezone(zone(timezone_name))
    try:
        return croniter(expression, local)
    except CroniterError:
        parse(expression)  # raises InvalidCron saying which field is wrong
        raise InvalidCron(f"{expression!r} is not a valid cron expression; {_NEEDS_FIVE}") from None


def _next(iterator: croniter, expression: str) -> datetime:
    try:
        return iterator.get_next(datetime).astimezone(UTC)
    except CroniterError as exc:
        raise InvalidCron(f"{expression!r} never fires ({exc}).") from None


def next_after(expression: str, timezone_name: str, moment: datetime) -> datetime:
    """The first fire time strictly after ``moment``."""
    return _next(_iterator(expression, timezone_name, moment), expression)


def next_times(expression: str, timezone_name: str, moment: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times strictly after ``moment``."""
    iterator = _iterator(expression, timezone_name, moment)
    return [_next(iterator, expression) for _ in range(count)]


def latest_times(
    expression: str, timezone_name: str, *, since: datetime, until: datetime, limit: int
) -> list[datetime]:
    """Up to ``limit`` of the latest fire times t with ``since <= t <= until``, oldest first.

    Fire times are found walking forwards, as ``next_after`` does, so both agree on every tick
    (croniter's backward walk disagrees with its forward one in a few DST transitions). After a
    long gap the walk starts near the end rather than at ``since``: a backward walk finds roughly
    where the last ``limit`` ticks begin, and a day of margin absorbs any disagreement there.
    """
    if limit < 1 or since > until:
        return []
    tiny = timedelta(microseconds=1)
    start = since - tiny
    backward = _iterator(expression, timezone_name, until + tiny)
    earliest = until
    try:
        for _ in range(limit):
            earliest = backward.get_prev(datetime).astimezone(UTC)
            if earliest < since:
                break
    except CroniterError:
        earliest = since
    jump = earliest - timedelta(days=1)
    if jump > start:
        start = jump
    found: deque[datetime] = deque(maxlen=limit)
    forward = _iterator(expression, timezone_name, start)
    while (tick := _next(forward, expression)) <= until:
        found.append(tick)
    return list(found)


def latest_at_or_before(expression: str, timezone_name: str, moment: datetime) -> datetime | None:
    """The last fire time at or before ``moment`` (None when croniter finds none).

    One backward step: cheap enough for every schedule on every metrics scrape. (In a few DST
    transitions croniter's backward walk disagrees with its forward one; a missed-schedule
    check, this function's user, can live with a tick an hour off there.)
    """
    iterator = _iterator(expression, timezone_name, moment + timedelta(microseconds=1))
    try:
        return iterator.get_prev(datetime).astimezone(UTC)
    except CroniterError:
        return None


@functools.lru_cache(maxsize=512)
def describe(expression: str) -> str:
    """The expression in English words, e.g. "At 00:05, every day" (the expression if it can't)."""
    from cron_descriptor import ExpressionDescriptor, Options

    # A fixed locale: cron-descriptor would otherwise guess one from the process's environment.
    options = Options(locale_code="en_US", use_24hour_time_format=True, verbose=True)
    try:
        return str(ExpressionDescriptor(expression, options).get_description())
    except Exception:  # noqa: BLE001 - a description is a nicety; the expression itself is truth
        return expression
