"""`/docs`, the API explorer: a page whose every file comes from the node, each with its content
type and cache validators, without a token (tests/e2e/test_docs_page.py renders it in Chromium)."""

from __future__ import annotations

import re

import httpx

CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


async def test_the_api_explorer_loads_only_files_the_node_serves(api: httpx.AsyncClient) -> None:
    page = await api.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert {asset.rsplit(".", 1)[1] for asset in assets} == {"js", "css", "png"}
    for asset in assets:
        assert asset.startswith("/static/"), asset
        served = await api.get(asset)
        assert served.status_code == 200, asset
        content_type = CONTENT_TYPES["." + asset.rsplit(".", 1)[1]]
        assert served.headers["content-type"].split(";")[0] == content_type, asset
        assert "max-age=" in served.headers["cache-control"], asset
        again = await api.get(asset, headers={"If-None-Match": served.headers["etag"]})
        assert again.status_code == 304, asset


async def test_the_explorer_starts_on_the_nodes_own_openapi_spec(api: httpx.AsyncClient) -> None:
    page = (await api.get("/docs")).text
    spec = re.search(r'data-spec="([^"]+)"', page)
    assert spec is not None
    answer = await api.get(spec[1])
    assert answer.status_code == 200
    assert "/api/v1/auth/login" in answer.json()["paths"]


async def test_no_api_docs_page_that_loads_from_a_cdn_is_served(api: httpx.AsyncClient) -> None:
    # quart-schema's pages for redoc and scalar load their scripts from public CDNs.
    for path in ("/redocs", "/scalar"):
        assert (await api.get(path)).status_code == 404, path
