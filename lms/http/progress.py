"""`/api/v1/progress`: learners record heartbeats and read where they stand."""

from __future__ import annotations

from quart import Blueprint, Response, request
from quart_schema import tag

from lms.domain.access import Principal
from lms.http.wire import authenticated, json_body, refuses, respond, returns, services
from proto.progress import CourseProgress, ProgressState, ProgressSummary, ProgressUpdate

blueprint = Blueprint("progress", __name__, url_prefix="/api/v1/progress")


@blueprint.post("")
@tag(["progress"])
@authenticated
@json_body(ProgressUpdate)
@returns(ProgressState)
@refuses(404)
async def record(who: Principal, body: ProgressUpdate) -> Response:
    """Record a heartbeat (video: `position`, `played` segments) or complete a text
    (`completed: true`); answers with the merged state once it is stored.

    Played time is credited no faster than the course's `max_playback_rate` allows since the
    last credited heartbeat (plus a few seconds' grace); what a heartbeat claims beyond that is
    not credited, and the answer's `clamped_seconds` counts it (the instructor sees it too).

    Only learners enrolled in the content's course record progress (403 otherwise). An optional
    `X-Device-Id` header names the device, so the change is not echoed back to it live.
    """
    device_id = request.headers.get("X-Device-Id")
    return respond(await services().progress.record(who, body, device_id=device_id))


@blueprint.get("/course/<int:course_id>")
@tag(["progress"])
@authenticated
@returns(CourseProgress)
async def course(course_id: int, who: Principal) -> Response:
    """The caller's progress in a course: each content in order, the share completed, and the
    next content to watch."""
    return respond(await services().progress.course(who, course_id))


@blueprint.get("/my/summary")
@tag(["progress"])
@authenticated
@returns(ProgressSummary)
async def summary(who: Principal) -> Response:
    """The caller's standing in every course they are enrolled in."""
    return respond(await services().progress.summary(who))
