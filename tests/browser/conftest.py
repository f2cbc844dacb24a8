"""The browser for tests/browser: Debian's Chromium driven by Playwright, which never
downloads a browser of its own. Without it the tests skip with what to install, and in
CI they fail (.ci/run installs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from tests.conftest import IN_CI

if TYPE_CHECKING:  # only for hints: without playwright the tests skip instead
    from playwright.sync_api import Browser

CHROMIUM = Path("/usr/bin/chromium")


def chromium_unavailable(problem: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"{problem}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        chromium_unavailable(
            f"{CHROMIUM} is missing: install Debian's chromium: apt-get install chromium"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium_unavailable("playwright is not installed: run `make .venv/.installed`")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()
