"""Playwright for the console tests; fails with the fix when Debian's Chromium is missing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Playwright, async_playwright

from tests.console.browser import CHROMIUM, SCREENSHOTS


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package chromium "
                    "(apt-get install -y chromium; it is listed in .ci/debian-packages.txt)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as running:
        yield running
