"""`/watch/{content_id}`: the player page, a static page (lms/static/watch.html, watch.js,
watch.css) that reads the video's manifest and plays it, with hls.js where the browser has no
native HLS (lms/static/vendor/hls.js/, `make vendor-hls`).

It signs in as the live room page does (lms/http/live_page.py): a small form against
`POST /api/v1/auth/login`, tokens in the tab's sessionStorage, or an access token in the URL's
fragment (`#token=...`), which the browser never sends to the server. The media itself needs no
token: the manifest hands out signed URLs.
"""

from __future__ import annotations

from importlib.resources import files

from quart import Blueprint, Response

blueprint = Blueprint("watch_page", __name__)

_PAGE = files("lms").joinpath("static/watch.html").read_bytes()


@blueprint.get("/watch/<int:content_id>")
async def watch_page(content_id: int) -> Response:
    # One page for every video: the script reads the content id from the path.
    return Response(
        _PAGE,
        content_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"},
    )
