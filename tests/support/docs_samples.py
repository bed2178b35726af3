"""Find the ```python samples of a Markdown page and say what each is (stdlib only).

Shared by tests/integration/test_docs.py and the runner it copies into the generated project
(tests/support/docs_site/runner.py), which imports it as a top-level module there.

A sample's first line says what it is:

- ``# shop/jobs.py`` (maybe followed by a remark): a file of the reader's project. It is written to that path of the
  generated project (several such samples of one page are joined, in order), so Django and
  the page's other samples import it as the reader's would be.
- ``# not run: <reason>``: not run at all (a settings fragment, a signature, a shell
  session). The reason is required.
- anything else: code run in order with the page's other samples, in one module of its own.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

NOT_RUN = "# not run:"
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
# A relative path of a Python file in the project, maybe followed by a remark after a space:
# "# shop/jobs.py", "# mysite/urls.py (the project's URLconf)".
_FILE = re.compile(r"^#\s*(?P<path>[A-Za-z_]\w*(?:/[A-Za-z_]\w*)*\.py)(?:\s.*)?$")


class BadSample(ValueError):
    """A sample whose first line breaks the convention above."""


@dataclass(frozen=True)
class Sample:
    page: Path
    line: int  # 1-based line, in the page, of the sample's first line of code
    code: str

    @property
    def first_line(self) -> str:
        return self.code.lstrip("\n").split("\n", 1)[0].strip()

    @property
    def skip_reason(self) -> str | None:
        """The reason after ``# not run:``, or None for a sample that runs."""
        if not self.first_line.startswith(NOT_RUN):
            return None
        reason = self.first_line[len(NOT_RUN):].strip()
        if not reason:
            raise BadSample(f"line {self.line}: `{NOT_RUN}` needs a reason after the colon")
        return reason

    @property
    def file(self) -> str | None:
        """The project file this sample is (``shop/jobs.py``), or None for page code."""
        match = _FILE.match(self.first_line)
        return match["path"] if match else None

    def padded(self, lines_before: int = 0) -> str:
        """The code behind blank lines, so line numbers in tracebacks are the page's."""
        return "\n" * (self.line - 1 - lines_before) + self.code


def python_samples(page: Path) -> Iterator[Sample]:
    """The ```python (or ~~~python) blocks of a Markdown page, dedented; list items' too."""
    lines = page.read_text().split("\n")
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = match["indent"], match["fence"], match["lang"].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        if lang in ("python", "py", "python3"):
            yield Sample(page, i + 2, textwrap.dedent("\n".join(body)))
        i = j + 1


def project_files(samples: list[Sample]) -> dict[str, str]:
    """The files the samples headed ``# <path>.py`` make, each padded to the page's lines."""
    files: dict[str, str] = {}
    for sample in samples:
        if sample.file is None or sample.skip_reason is not None:
            continue
        before = files.get(sample.file, "")
        used = before.count("\n")
        if used >= sample.line:
            raise BadSample(f"line {sample.line}: two samples for {sample.file} overlap")
        files[sample.file] = before + sample.padded(used) + "\n"
    return files


def page_code(samples: list[Sample]) -> list[Sample]:
    """The samples that run as the page's own code, in order."""
    return [s for s in samples if s.skip_reason is None and s.file is None]
