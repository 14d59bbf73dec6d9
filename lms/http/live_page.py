"""`/live/{course_id}`: the instructor's live room page, a static page that speaks the room's
WebSocket protocol itself (lms/static/live.html and live.js; sign-in as every page,
lms/http/static_page.py)."""

from __future__ import annotations

from quart import Blueprint, Response

from lms.http.static_page import page_response, read_page

blueprint = Blueprint("live_page", __name__)

_PAGE = read_page("live.html")


@blueprint.get("/live/<int:course_id>")
async def live_page(course_id: int) -> Response:
    # One page for every course: the script reads the course id from the path.
    return page_response(_PAGE)
