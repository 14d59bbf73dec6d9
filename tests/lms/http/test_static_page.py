"""The node's pages: each is served without a token, carries the one stylesheet and the
navigation bar, runs no inline script or style (a strict Content-Security-Policy is to come), and
every script it loads, and every module those import, is served by the node
(tests/e2e/test_*_page.py drive them in Chromium)."""

from __future__ import annotations

import re

import httpx
import pytest

PAGES = [
    "/dashboard",
    "/courses/1/analytics",
    "/admin",
    "/live/1",
    "/watch/1",
    "/admin/jobs",
    "/reset-password",
]
# Pages for people who cannot sign in: no session there (session.js would take a reset link's
# `#token=` for an access token).
SIGNED_OUT = {"/reset-password"}
CONTENT_TYPES = {"js": "text/javascript", "css": "text/css"}
IMPORT = re.compile(r'^import .* from "(/static/[^"]+)";$', re.MULTILINE)


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_shares_the_stylesheet_the_bar_and_scripts_the_node_serves(
    api: httpx.AsyncClient, path: str
) -> None:
    page = await api.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    html = page.text
    assert '<link rel="stylesheet" href="/static/site.css">' in html
    assert '<nav id="site-nav"' in html
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, "an inline script"
    assert re.search(r"\son[a-z]+=", html) is None, "an inline event handler"

    pending = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    seen: set[str] = set()
    while pending:
        asset = pending.pop()
        if asset in seen:
            continue
        seen.add(asset)
        served = await api.get(asset)
        assert served.status_code == 200, asset
        kind = CONTENT_TYPES[asset.rsplit(".", 1)[1]]
        assert served.headers["content-type"].split(";")[0] == kind, asset
        if asset.endswith(".js") and "/vendor/" not in asset:
            pending.extend(IMPORT.findall(served.text))
    # Every page signs in through the one session module.
    assert ("/static/session.js" in seen) == (path not in SIGNED_OUT)


async def test_no_page_keeps_its_own_copy_of_the_sign_in(api: httpx.AsyncClient) -> None:
    for script in (
        "live.js",
        "watch.js",
        "admin_jobs.js",
        "dashboard.js",
        "course_analytics.js",
        "admin.js",
    ):
        text = (await api.get(f"/static/{script}")).text
        assert "/api/v1/auth/" not in text, script
        assert "Storage" not in text, script
