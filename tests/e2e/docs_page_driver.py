"""Opens the API explorer in headless Chromium as on a machine without internet access, in a
process of its own: Playwright runs an asyncio loop, which must not meet the trio-asyncio loop of
the test process.

    python -m tests.e2e.docs_page_driver URL

Every request to a host other than 127.0.0.1 is refused before it leaves the browser (and
recorded), and no other name resolves. Waits (a while) for the page to render the login
operation, then prints what the page did as one JSON line: the operations shown, the requests that
tried to leave the machine, the loopback requests that failed, and the page's errors and
Content-Security-Policy violations.
"""

from __future__ import annotations

import json
import sys
from urllib.parse import urlsplit

from playwright.sync_api import ConsoleMessage, Request, Response, Route, expect

from tests.e2e.chromium import chromium

WAIT_MS = 20_000
LOOPBACK = "127.0.0.1"
# Behind the route below: a name that is not the loopback address does not even resolve.
OFFLINE_FLAGS = [f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOOPBACK}"]
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
READ_OPERATIONS = """
(blocks) => blocks.map((block) => {
  const method = block.querySelector(".opblock-summary-method").innerText;
  const path = block.querySelector(".opblock-summary-path").dataset.path;
  return `${method} ${path}`;
})
"""


def main(url: str) -> None:
    left: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def offline(route: Route) -> None:
        if urlsplit(route.request.url).hostname == LOOPBACK:
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort("internetdisconnected")

    def on_failed(request: Request) -> None:
        if urlsplit(request.url).hostname == LOOPBACK:
            failed.append(f"{request.url} {request.failure}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.url} {response.status}")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    with chromium(*OFFLINE_FLAGS) as browser:
        context = browser.new_context()
        context.route("**/*", offline)
        page = context.new_page()
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("requestfailed", on_failed)
        page.on("response", on_response)
        page.on("console", on_console)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        login = page.locator(".opblock-summary-path[data-path='/api/v1/auth/login']")
        try:
            expect(login).to_be_visible(timeout=WAIT_MS)
            page.wait_for_load_state("networkidle")
        except AssertionError as never_shown:  # what the page did says why
            errors.append(str(never_shown).splitlines()[0])
        seen = {
            "operations": page.locator(".opblock").evaluate_all(READ_OPERATIONS),
            "left_the_machine": left,
            "failed": failed,
            "errors": errors,
            "csp_violations": page.evaluate("window.cspViolations"),
        }
        print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
