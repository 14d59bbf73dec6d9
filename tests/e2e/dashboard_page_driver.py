"""Drives the dashboards' pages in headless Chromium, in a process of its own: Playwright runs an
asyncio loop, which must not meet the trio-asyncio loop of the test process.

    python -m tests.e2e.dashboard_page_driver analytics NODE_URL EMAIL PASSWORD COURSE_ID VIDEO_ID
    python -m tests.e2e.dashboard_page_driver roles NODE_URL ADMIN_EMAIL ADMIN_PASSWORD \
        LEARNER_EMAIL LEARNER_PASSWORD COURSE_ID

Each prints what it saw as JSON lines, each with a `phase`:

- `analytics`: signs in on `/courses/{id}/analytics` and reports (`before`) once the video's
  retention chart is drawn and the page's live socket is up. Then it waits, without reloading,
  until the page shows a viewer more than before (the test sends a heartbeat meanwhile) and
  reports again (`after`), with the charts' coloured pixels read back from their canvases.
- `roles`: the admin signs in once on `/dashboard` and opens `/admin` (its "This node" figures
  read too), `/admin/jobs` and the live room from the navigation bar and a new tab (`admin`,
  with the sign-in requests counted); the page refreshes its access token itself before it
  expires (`renewed`, the browser's clock run ahead) and once after a 401 (`recovered`); then
  the learner signs in on their dashboard in a browser context of their own (`learner`).
"""

from __future__ import annotations

import json
import sys

from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.chromium import chromium

WAIT_MS = 20_000

# Page functions (Playwright evaluates them in the page).
COLOURED_PIXELS = """(selector) => {
  // Pixels of the charts' blue series in the chart's canvas; the axes and grid are grey.
  const canvas = document.querySelector(`${selector} canvas`);
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0 && data[i + 2] > data[i] + 60) count += 1;
  }
  return count;
}"""
NAV = """() => [...document.querySelectorAll("#site-nav a")].map((a) => a.getAttribute("href"))"""
VIEWERS_ABOVE = """([id, n]) => {
  const article = document.querySelector(`article[data-content="${id}"]`);
  return article && Number(article.dataset.viewers) > n;
}"""
TOKENS = """() => ({
  access: localStorage.getItem("lms.access"), refresh: localStorage.getItem("lms.refresh"),
})"""
ACCESS_CHANGED = "(before) => localStorage.getItem('lms.access') !== before"
NODE_FIGURES = """() => Object.fromEntries(
  [...document.querySelectorAll("#node-figures [data-figure]")]
    .map((div) => [div.dataset.figure, div.querySelector("dd").textContent]))"""


def report(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(url)
    page.fill("#login input[name=email]", email)
    page.fill("#login input[name=password]", password)
    page.click("#login button")


def nav(page: Page) -> list[str]:
    page.wait_for_selector("#site-nav[data-role]", timeout=WAIT_MS)
    return page.evaluate(NAV)


def pixels(page: Page, selector: str) -> int:
    return page.evaluate(COLOURED_PIXELS, selector)


def analytics(page: Page, url: str, email: str, password: str, course: str, video: str) -> None:
    sign_in(page, f"{url}/courses/{course}/analytics", email, password)
    chart = f"article[data-content='{video}']"
    page.wait_for_selector(f"{chart}[data-viewers] canvas", timeout=WAIT_MS)
    expect(page.locator("#status")).to_have_text("live", timeout=WAIT_MS)
    viewers = int(page.get_attribute(chart, "data-viewers") or "-1")
    report(
        phase="before",
        viewers=viewers,
        retention=pixels(page, chart),
        enrolled=page.inner_text("#enrolled"),
        title=page.title(),
        nav=nav(page),
        login_shown=page.is_visible("#login"),
    )
    page.evaluate("window.samePage = true")  # gone if the page reloads
    page.wait_for_function(VIEWERS_ABOVE, arg=[video, viewers], timeout=WAIT_MS)
    report(
        phase="after",
        viewers=int(page.get_attribute(chart, "data-viewers") or "-1"),
        retention=pixels(page, chart),
        funnel=pixels(page, "#funnel-chart"),
        drops=page.locator(f"{chart} .drops li").all_inner_texts(),
        same_page=page.evaluate("window.samePage === true"),
    )


def roles(context: BrowserContext, learner_context: BrowserContext, url: str, *args: str) -> None:
    admin_email, admin_password, learner_email, learner_password, course = args
    logins: list[str] = []
    context.on("request", lambda r: logins.append(r.url) if r.url.endswith("/login") else None)
    refreshes: list[int] = []
    context.on(
        "response", lambda r: refreshes.append(r.status) if r.url.endswith("/refresh") else None
    )
    page = context.new_page()
    page.clock.install()  # the real time, until the test runs it ahead
    sign_in(page, f"{url}/dashboard", admin_email, admin_password)
    entries = nav(page)
    # Read once the bar shows the sign-in took: read right after the click, the tokens could be
    # the ones before it (none), which any later value "replaces" with no refresh at all.
    signed_in = page.evaluate(TOKENS)
    page.click("#site-nav a[data-nav=admin]")
    page.wait_for_url(f"{url}/admin")
    expect(page.locator("#users")).not_to_have_text("—", timeout=WAIT_MS)
    admin_users = page.inner_text("#users")
    page.wait_for_selector("#node-figures [data-figure=requests]", timeout=WAIT_MS)
    node_id, node_figures = page.inner_text("#node-id"), page.evaluate(NODE_FIGURES)
    page.click("#site-nav a[data-nav=jobs]")
    expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    tab = context.new_page()
    tab.goto(f"{url}/live/{course}")
    expect(tab.locator("#status")).to_have_text("live", timeout=WAIT_MS)
    report(
        phase="admin",
        nav=entries,
        users=admin_users,
        node_id=node_id,
        node_figures=node_figures,
        live_title=tab.title(),
        logins=len(logins),
        login_shown=[p.is_visible("#login") for p in (page, tab)],
    )

    # Before the access token expires (the node's lives 10 s), the page takes a new pair. On a
    # slow machine the real time since signing in may already have brought it: either way, the
    # pair signed in with is replaced once, by one refresh.
    page.clock.run_for(9_000)
    page.wait_for_function(
        f"() => localStorage.getItem('lms.access') !== {json.dumps(signed_in['access'])}"
    )
    renewed = page.evaluate(TOKENS)
    report(
        phase="renewed",
        status=refreshes[0],
        access_changed=renewed["access"] != signed_in["access"],
        refresh_changed=renewed["refresh"] != signed_in["refresh"],
    )

    # An access token the server refuses: one refresh, and the next page carries on signed in.
    # (From a quiet page: the jobs page polls, and a refresh cut short by leaving the page
    # would have its new pair lost with the page.)
    page.goto(f"{url}/dashboard")
    expect(page.locator("#watched")).not_to_have_text("—", timeout=WAIT_MS)
    page.evaluate("localStorage.setItem('lms.access', 'not-a-token')")
    with page.expect_response("**/api/v1/auth/refresh", timeout=WAIT_MS) as refreshed:
        page.click("#site-nav a[data-nav=admin]")
    expect(page.locator("#users")).not_to_have_text("—", timeout=WAIT_MS)
    report(
        phase="recovered",
        status=refreshed.value.status,
        login_shown=page.is_visible("#login"),
        logins=len(logins),
    )

    page = learner_context.new_page()
    sign_in(page, f"{url}/dashboard", learner_email, learner_password)
    page.wait_for_selector("#watch-chart canvas", timeout=WAIT_MS)
    expect(page.locator("#resume a")).to_have_count(1, timeout=WAIT_MS)
    report(
        phase="learner",
        nav=nav(page),
        watch_chart=pixels(page, "#watch-chart"),
        resume=page.get_attribute("#resume a", "href"),
        watched=page.inner_text("#watched"),
        streak=page.inner_text("#streak"),
        in_progress=page.inner_text("#in-progress"),
    )


def main(mode: str, url: str, *args: str) -> None:
    with chromium() as browser:
        contexts = [browser.new_context(), browser.new_context()]
        for context in contexts:
            context.on("console", lambda m: print(f"console: {m.text}", file=sys.stderr))
        if mode == "analytics":
            analytics(contexts[0].new_page(), url, *args)
        else:
            roles(*contexts, url, *args)


if __name__ == "__main__":
    main(*sys.argv[1:])
