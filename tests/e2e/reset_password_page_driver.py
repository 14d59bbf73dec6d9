"""Drives `/reset-password` in headless Chromium, in a process of its own (Playwright runs an
asyncio loop, which must not meet the trio-asyncio loop of the test process), one command a line
on stdin, answering each with a JSON line on stdout:

    python -m tests.e2e.reset_password_page_driver

- `{"do": "ask", "url": NODE_URL, "email": E}`: on `/dashboard`, signed out, types E into the
  sign-in form, follows its "Forgot your password?" link and sends the form it leads to;
  answers with what that form had filled in and what the page said after.
- `{"do": "choose", "url": LINK, "password": P, "again": Q}`: opens a reset mail's link, types P
  and Q as the new password and its repetition and sends them; answers with the address the
  page shows and what it said after (done, or a notice on one of its forms).

Ends at the end of stdin.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from playwright.sync_api import Page

from tests.e2e.chromium import chromium

WAIT_MS = 20_000

# Settled: the page says something after a submission, a result or a notice.
SETTLED = """() => !document.getElementById("done").hidden ||
  [...document.querySelectorAll("form:not([hidden]) .notice")].some((n) => n.textContent)"""


def shown(page: Page) -> dict[str, Any]:
    def text(selector: str) -> str:
        return page.inner_text(selector) if page.is_visible(selector) else ""

    return {
        "done": text("#done-title"),
        "done_text": text("#done-text"),
        "done_link": page.get_attribute("#done-link", "href") if page.is_visible("#done") else "",
        "ask_shown": page.is_visible("#ask"),
        "ask_notice": text("#ask .notice"),
        "choose_notice": text("#choose .notice"),
    }


def ask(page: Page, url: str, email: str) -> dict[str, Any]:
    page.goto(f"{url}/dashboard")
    page.wait_for_selector("#login", state="visible", timeout=WAIT_MS)
    page.fill("#login input[name=email]", email)
    page.click("#forgot")
    page.wait_for_selector("#ask", state="visible", timeout=WAIT_MS)
    arrived = {"path": page.evaluate("location.pathname + location.hash")}
    prefilled = page.input_value("#ask input[name=email]")
    with page.expect_response("**/api/v1/auth/password-reset", timeout=WAIT_MS) as answer:
        page.click("#ask button")
    page.wait_for_function(SETTLED, timeout=WAIT_MS)
    return {**arrived, "prefilled": prefilled, "status": answer.value.status, **shown(page)}


def choose(page: Page, url: str, password: str, again: str) -> dict[str, Any]:
    page.goto(url)
    page.wait_for_selector("#choose", state="visible", timeout=WAIT_MS)
    opened = {"address": page.evaluate("location.href")}
    page.fill("#choose input[name=password]", password)
    page.fill("#choose input[name=again]", again)
    page.click("#choose button")
    page.wait_for_function(SETTLED, timeout=WAIT_MS)
    return {**opened, **shown(page)}


def main() -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.on("console", lambda m: print(f"console: {m.text}", file=sys.stderr))
        for line in sys.stdin:
            command = json.loads(line)
            match command.pop("do"):
                case "ask":
                    seen = ask(page, **command)
                case "choose":
                    seen = choose(page, **command)
            print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main()
