"""Drives the live room page in headless Chromium, in a process of its own: Playwright runs an
asyncio loop, which must not meet the trio-asyncio loop of the test process.

    python -m tests.e2e.live_page_driver URL EMAIL PASSWORD LEARNER_ID COVERAGE

Signs in on the page, prints `live` once the page's socket is up, then waits for the learner's
row to show COVERAGE (e.g. "15%") and prints what the row says as one JSON line.
"""

from __future__ import annotations

import json
import sys

from playwright.sync_api import expect

from tests.e2e.chromium import chromium

WAIT_MS = 20_000


def main(url: str, email: str, password: str, learner_id: str, coverage: str) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("#login button")
        expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
        print("live", flush=True)
        row = page.locator(f"tr[data-user='{learner_id}']")
        expect(row.locator(".coverage")).to_have_text(coverage, timeout=WAIT_MS)
        name = row.locator("td").first
        seen = {
            "who": name.inner_text(),
            "online": name.get_attribute("class"),
            "watching": row.locator(".watching").inner_text(),
            "position": row.locator(".position").inner_text(),
            "count": page.locator("#count").inner_text(),
            "title": page.title(),
        }
        print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
