"""`POST /api/v1/courses/{id}/announcements`: an instructor tells everyone in the course, now."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import tag

from lms.domain.access import Principal
from lms.http.wire import authenticated, json_body, respond, returns, services
from proto.api import ErrorBody
from proto.frames import Announcement
from proto.live import AnnouncementCreate

blueprint = Blueprint("announcements", __name__, url_prefix="/api/v1/courses")


@blueprint.post("/<int:course_id>/announcements")
@tag(["live"])
@authenticated
@json_body(AnnouncementCreate)
@returns(Announcement, 201)
@returns(ErrorBody, 429)
async def announce(course_id: int, who: Principal, body: AnnouncementCreate) -> Response:
    """Send an announcement to every member of the course (the course's instructor or an
    admin): live, on every node, to the room and to enrolled learners' other sockets. Limited
    per account and per client (429 with Retry-After)."""
    await count_announcement(who)
    return respond(await services().live.announce(who, course_id, body.text), 201)


async def count_announcement(who: Principal) -> None:
    """Count an announcement, made here or on a course's socket, against its author and their
    client address (`RateLimited` past either limit)."""
    limits = services().limits
    await limits.per_client(limits.announce_per_ip, "announcements from here")
    await limits.per_user(limits.announce_per_user, who.user_id, "announcements from this account")
