"""Text that PostgreSQL can always store (the one place that makes an arbitrary string storable),
and the small wording helpers error messages share."""

from __future__ import annotations


def storable(text: str) -> str:
    """Return ``text`` with what PostgreSQL's text and jsonb refuse written out as escapes.

    NUL becomes ``\\x00`` and a lone surrogate (what ``os.fsdecode()`` gives for a file name that
    isn't UTF-8, e.g. ``report-\\udcff.csv``) becomes ``\\udcff``. Errors, tracebacks, progress
    messages and log lines go through here, so a job's failure can always be recorded.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def a_or_an(word: str) -> str:
    """``word`` with its indefinite article: "an object", "a set", "a UUID"."""
    # By the first letter: type names are where this is used, and of those only the ones that
    # start with "u" read with a consonant sound ("a UUID", "a uuid").
    return f"{'an' if word[:1].lower() in ('a', 'e', 'i', 'o') else 'a'} {word}"


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def duration(seconds: float) -> str:
    """A length of time in its largest whole unit: "7 days", "36 hours", "90 seconds"."""
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"
