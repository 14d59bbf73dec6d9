"""Drives the player page (`/watch/{content_id}?engine=hlsjs`) in headless Chromium, in a process
of its own: Playwright runs an asyncio loop, which must not meet the trio-asyncio loop of the test
process.

    python -m tests.e2e.watch_page_driver watch URL EMAIL PASSWORD
    python -m tests.e2e.watch_page_driver early URL EMAIL PASSWORD

Both sign in on the page's form and let it start the video itself (autoplay is allowed, as for a
viewer who has used the site before). Each prints what it saw as JSON lines:

- `watch`, on a finished video: once playing (`readyState`, `currentTime`, the engine, the
  quality menu); after hovering the middle of the scrub bar and clicking there (the storyboard
  tile shown, where playback landed); after pausing there, once the page says the heartbeat was
  stored (`saved`); after reloading the page, where playback starts again.
- `early`, opened while the video transcodes: the page's transcoding label, then `playing` with
  the wall-clock time (`at`) once playback passed 1.5 s, then where playback is once the page has
  moved on to the published files and plays on.

Either exits 1, naming them, if the page broke its Content-Security-Policy anywhere.
"""

from __future__ import annotations

import json
import re
import sys
import time

from playwright.sync_api import Page, expect

from tests.e2e.chromium import chromium

WAIT_MS = 20_000
AUTOPLAY = "--autoplay-policy=no-user-gesture-required"
# Every Content-Security-Policy violation of every page load (the node's own policy, no nginx:
# lms/http/security_headers.py), handed to Python as it happens so a reload loses none.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolation(`${event.violatedDirective} ${event.blockedURI}`);
});
"""

# Page functions (Playwright evaluates them in the page).
PLAYED_PAST = """(t) => {
  const v = document.getElementById("video");
  return v.readyState >= 3 && v.currentTime > t;
}"""
LANDED_AT = """(t) => {
  const v = document.getElementById("video");
  return v.readyState >= 3 && !v.seeking && Math.abs(v.currentTime - t) < 1;
}"""
SAVED_WHERE_PAUSED = """() => {
  const v = document.getElementById("video"), saved = document.getElementById("saved");
  return v.paused && saved.dataset.position
    && Math.abs(saved.dataset.position - v.currentTime) < 0.01;
}"""
SETTLED = """() => {
  const v = document.getElementById("video");
  return v.readyState >= 3 && !v.seeking;
}"""
PLAYBACK = """() => {
  const v = document.getElementById("video");
  return {
    readyState: v.readyState, currentTime: v.currentTime, duration: v.duration, paused: v.paused,
  };
}"""
TILE = """async (thumb) => ({
  seconds: Number(thumb.dataset.seconds),
  image: thumb.style.backgroundImage,
  position: thumb.style.backgroundPosition,
  width: thumb.style.width,
  loads: (await fetch(thumb.style.backgroundImage.slice(5, -2))).headers.get("content-type"),
})"""


def report(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def sign_in(page: Page, url: str, email: str, password: str) -> None:
    page.goto(url)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("#login button")


def playback(page: Page) -> dict:
    return page.evaluate(PLAYBACK)


def watch(page: Page, url: str, email: str, password: str) -> None:
    sign_in(page, url, email, password)
    page.wait_for_function(PLAYED_PAST, arg=1.5, timeout=WAIT_MS)
    report(
        phase="playing",
        engine=page.get_attribute("#player", "data-engine"),
        qualities=page.eval_on_selector_all("#quality option", "os => os.map(o => o.text)"),
        **playback(page),
    )

    # Hover the middle of the scrub bar, then click there.
    scrub = page.locator("#scrub")
    box = scrub.bounding_box()
    assert box is not None
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*middle)
    expect(page.locator("#thumb")).to_be_visible(timeout=WAIT_MS)
    tile = page.eval_on_selector("#thumb", TILE)
    page.mouse.click(*middle)
    target = float(scrub.input_value())
    page.wait_for_function(LANDED_AT, arg=target, timeout=WAIT_MS)
    report(phase="seeked", target=target, tile=tile, **playback(page))

    # Play on a second past the middle, then pause: the page saves the position.
    page.wait_for_function(PLAYED_PAST, arg=target + 1, timeout=WAIT_MS)
    page.click("#play")
    page.wait_for_function(SAVED_WHERE_PAUSED, timeout=WAIT_MS)
    report(
        phase="saved",
        saved=float(page.get_attribute("#saved", "data-position") or "nan"),
        text=page.inner_text("#saved"),
        **playback(page),
    )

    page.reload()
    page.wait_for_function(SETTLED, timeout=WAIT_MS)
    report(phase="reloaded", **playback(page))


def early(page: Page, url: str, email: str, password: str) -> None:
    sign_in(page, url, email, password)
    label = page.locator("#transcoding")
    expect(label).to_have_text(re.compile(r"Transcoding, \d+ %"), timeout=WAIT_MS)
    report(phase="transcoding", label=label.inner_text())
    page.wait_for_function(PLAYED_PAST, arg=1.5, timeout=WAIT_MS)
    report(phase="playing", at=time.time(), label=label.inner_text(), **playback(page))
    expect(page.locator("#status")).not_to_have_attribute(
        "data-state", "transcoding", timeout=WAIT_MS
    )
    now = playback(page)["currentTime"]
    page.wait_for_function(PLAYED_PAST, arg=now + 1, timeout=WAIT_MS)
    report(phase="published", label_hidden=label.is_hidden(), **playback(page))


def main(mode: str, url: str, email: str, password: str) -> None:
    violations: list[str] = []
    with chromium(AUTOPLAY) as browser:
        page = browser.new_page()
        page.on("console", lambda message: print(f"console: {message.text}", file=sys.stderr))
        page.expose_function("cspViolation", lambda violation: violations.append(violation))
        page.add_init_script(REPORT_VIOLATIONS)
        {"watch": watch, "early": early}[mode](page, url, email, password)
    if violations:
        sys.exit(f"Content-Security-Policy violations: {violations}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
