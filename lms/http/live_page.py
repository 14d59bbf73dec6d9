"""`/live/{course_id}`: the instructor's live room page, a static page that speaks the room's
WebSocket protocol itself (lms/static/live.html and live.js).

The page needs no token in its URL (which would end up in logs and browser history): it signs
in with a small form against `POST /api/v1/auth/login` and keeps the tokens in the tab's
sessionStorage, or takes an access token from the URL's fragment (`#token=...`), which the
browser never sends to the server.
"""

from __future__ import annotations

from importlib.resources import files

from quart import Blueprint, Response

blueprint = Blueprint("live_page", __name__)

_PAGE = files("lms").joinpath("static/live.html").read_bytes()


@blueprint.get("/live/<int:course_id>")
async def live_page(course_id: int) -> Response:
    # One page for every course: the script reads the course id from the path.
    return Response(
        _PAGE,
        content_type="text/html; charset=utf-8",
        headers={"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"},
    )
