"""`/watch/{content_id}`: the player page, a static page (lms/static/watch.html, watch.js) that
reads the video's manifest and plays it, with hls.js where the browser has no native HLS
(lms/static/vendor/hls.js/, `make vendor-hls`).

It signs in as every page does (lms/http/static_page.py). The media itself needs no token: the
manifest hands out signed URLs.
"""

from __future__ import annotations

from quart import Blueprint, Response

from lms.http.static_page import page_response, read_page

blueprint = Blueprint("watch_page", __name__)

_PAGE = read_page("watch.html")


@blueprint.get("/watch/<int:content_id>")
async def watch_page(content_id: int) -> Response:
    # One page for every video: the script reads the content id from the path.
    return page_response(_PAGE)
