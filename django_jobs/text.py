"""Text that PostgreSQL can always store: the one place that makes an arbitrary string storable."""

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
