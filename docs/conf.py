"""Sphinx configuration: the Markdown pages under docs/ (MyST) as a site.

Build it as CI does, warnings as errors: ``.venv/bin/sphinx-build -W -b html docs docs/_build``
(``python3 tests/run.py --only docs``).

The ``# not run: reason`` first line of a code sample (tests/integration/test_docs.py's convention) is left
out of the rendered page. Navigation: the hidden toctrees at the end of index.md; a page missing
from them fails the build.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

from django_jobs import __version__  # noqa: E402

project = "django-jobs"
author = "django-jobs contributors"
copyright = "django-jobs contributors"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = ["myst_parser", "sphinxcontrib.mermaid"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
# ```mermaid fences (GitHub draws them) become diagrams here too.
myst_fence_as_directive = ["mermaid"]
# Anchors for headings down to ###, so pages can link to sections (page.md#a-heading).
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"django-jobs {release}"

_NOT_RUN = re.compile(r"^([ \t]*```python[^\n]*\n)[ \t]*# not run:[^\n]*\n", re.MULTILINE)


def _hide_not_run(app: Any, docname: str, source: list[str]) -> None:
    source[0] = _NOT_RUN.sub(r"\1", source[0])


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", _hide_not_run)
    return {"parallel_read_safe": True}
