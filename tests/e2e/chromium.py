"""Debian's Chromium, headless, driven by Playwright in a page driver's own process (Playwright
runs an asyncio loop, which must not meet the trio-asyncio loop of the test process).

    with chromium() as browser:
        page = browser.new_page()

Never `playwright install`: the browser is the system's. The flags keep it quiet (no sandbox,
which root requires; no GPU; nothing fetched in the background).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
)


@contextmanager
def chromium(*extra_flags: str) -> Iterator[Browser]:
    """A running Chromium with the project's flags and `extra_flags`, closed on the way out."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, *extra_flags])
        try:
            yield browser
        finally:
            browser.close()
