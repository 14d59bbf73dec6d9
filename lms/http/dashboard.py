"""`/api/v1/dashboard`: the learner's dashboard and progress chart, a course's analytics for its
instructor, the platform for admins. Answers come from the node's cache (`lms.analytics`) as the
JSON it keeps, sent as they are."""

from __future__ import annotations

from datetime import date

from quart import Blueprint, Response, request
from quart_schema import tag

from lms.domain.access import Principal
from lms.domain.watch_time import Bucket
from lms.errors import Invalid
from lms.http.wire import authenticated, returns, services
from proto.api import ErrorBody
from proto.dashboard import AdminDashboard, CourseAnalytics, LearnerStats, ProgressOverTime

blueprint = Blueprint("dashboard", __name__, url_prefix="/api/v1/dashboard")


@blueprint.get("/stats")
@tag(["dashboard"])
@authenticated
@returns(LearnerStats)
async def stats(who: Principal) -> Response:
    """Your courses in progress and completed, total watch time, current and longest streak
    (days counted in your `time_zone`), recent activity and where to resume each course."""
    return _json(await services().analytics.stats(who))


@blueprint.get("/analytics/progress")
@tag(["dashboard"])
@authenticated
@returns(ProgressOverTime)
@returns(ErrorBody, 422)
async def progress(who: Principal) -> Response:
    """Your watch time and completions per local day or ISO week: `?from=` and `?to=` are
    dates (YYYY-MM-DD, default the last 30 days up to today), `?bucket=` `day` (default) or
    `week`."""
    first = _query_date("from")
    last = _query_date("to")
    bucket = _query_bucket()
    return _json(await services().analytics.progress(who, first=first, last=last, bucket=bucket))


@blueprint.get("/analytics/course/<int:course_id>")
@tag(["dashboard"])
@authenticated
@returns(CourseAnalytics)
@returns(ErrorBody, 403)
@returns(ErrorBody, 404)
async def course(course_id: int, who: Principal) -> Response:
    """A course's enrolments, active learners, completion funnel and coverage, and per video
    its audience retention (share of viewers per second) with its steepest drop-offs. For the
    course's instructor and admins."""
    return _json(await services().analytics.course(who, course_id))


@blueprint.get("/admin")
@tag(["dashboard"])
@authenticated
@returns(AdminDashboard)
@returns(ErrorBody, 403)
async def admin(who: Principal) -> Response:
    """Users, active users, enrolments, completions, watch time, the transcode queue with its
    recent failures, and the top courses. For admins."""
    return _json(await services().analytics.admin(who))


def _json(body: bytes) -> Response:
    return Response(body, content_type="application/json")


def _query_date(name: str) -> date | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise Invalid(f"query parameter {name!r} must be a date as YYYY-MM-DD") from None


def _query_bucket() -> Bucket:
    raw = request.args.get("bucket", Bucket.DAY.value)
    try:
        return Bucket(raw)
    except ValueError:
        raise Invalid("query parameter 'bucket' must be 'day' or 'week'") from None
