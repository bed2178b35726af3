"""What the browser tests share: screenshots, messages, and whether Chromium can run here.

The fixtures that start Chromium and log an operator in are in tests/browser/conftest.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO

SCREENSHOTS = REPO / "screenshots"
PASSWORD = "browser-test-password"
#: Milliseconds a page or element may take: generous, for a loaded CI machine.
TIMEOUT_MS = 20_000


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run in CI; see .ci/run)")
    pytest.skip(reason)


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as screenshots/<name>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def messages(page: Any) -> str:
    return page.inner_text("ul.messagelist") if page.locator("ul.messagelist").count() else ""
