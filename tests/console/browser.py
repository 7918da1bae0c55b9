"""Chromium for console tests: Debian's browser, a new empty profile, screenshots."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
# Default milliseconds a Playwright action or expectation waits.
DEFAULT_TIMEOUT_MS = 20_000


async def open_browser(playwright: Playwright, profile: Path, **options: Any) -> BrowserContext:
    """Start Chromium with a new, empty profile directory."""
    shutil.rmtree(profile, ignore_errors=True)
    context = await playwright.chromium.launch_persistent_context(
        profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, **options)
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    return context


async def shot(page: Page, name: str) -> None:
    """Save a full-page screenshot as ``tests/artifacts/screenshots/<name>.png``."""
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
