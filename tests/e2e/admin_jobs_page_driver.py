"""Drives the transcode jobs page in headless Chromium, in a process of its own: Playwright runs an
asyncio loop, which must not meet the trio-asyncio loop of the test process.

    python -m tests.e2e.admin_jobs_page_driver URL EMAIL PASSWORD

Signs in on the page and prints `live` once the page's socket is up. Then, for each line
`JOB_ID STATUS` read from stdin, waits for that job's row to show STATUS and prints what the row
says as one JSON line; exits at the end of its input.

The page's clock stands still, so its poll (a timer) never fires: only the socket's `job` frames
can move the table, which is what the test shows.
"""

from __future__ import annotations

import json
import sys

from playwright.sync_api import Page, expect

from tests.e2e.chromium import chromium

WAIT_MS = 30_000
FIELDS = ["status", "progress", "eta", "attempts", "worker", "error"]
READ_ROW = (
    "(tr, names) => Object.fromEntries(names.map((n) => [n, tr.querySelector(`.${n}`).innerText]))"
)


def main(url: str, email: str, password: str) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.clock.install(time=0)  # then stopped: the page's timers never fire
        page.clock.pause_at(1000)
        page.goto(url)
        page.fill("input[name=email]", email)
        page.fill("input[name=password]", password)
        page.click("#login button")
        expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
        page.evaluate("window.loadedOnce = true")  # gone if the page reloads
        print("live", flush=True)
        for line in sys.stdin:
            job_id, status = line.split()
            print(json.dumps(row(page, job_id, status)), flush=True)


def row(page: Page, job_id: str, status: str) -> dict[str, str | bool]:
    tr = page.locator(f"#jobs tr[data-job='{job_id}']")
    expect(tr.locator(".status")).to_have_text(status, timeout=WAIT_MS)
    seen: dict[str, str | bool] = tr.evaluate(READ_ROW, FIELDS)  # one render, read at once
    seen["same_page"] = page.evaluate("window.loadedOnce === true")
    return seen


if __name__ == "__main__":
    main(*sys.argv[1:4])
