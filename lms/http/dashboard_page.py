"""The dashboards' pages, static pages that draw the `/api/v1/dashboard/...` answers with uPlot
(lms/static/vendor/uplot/) and follow live frames (sign-in as every page,
lms/http/static_page.py):

- `/dashboard`: the learner's figures, streaks, what to resume, watch time over time
  (lms/static/dashboard.html, dashboard.js);
- `/courses/{course_id}/analytics`: a course's enrolments, active learners, completion funnel and
  each video's audience retention, live while a class watches (course_analytics.html, .js);
- `/admin`: the platform at a glance (admin.html, admin.js).

Who may see what is the API's to decide: a page only shows what its calls are allowed.
"""

from __future__ import annotations

from quart import Blueprint, Response

from lms.http.static_page import page_response, read_page

blueprint = Blueprint("dashboard_page", __name__)

_DASHBOARD = read_page("dashboard.html")
_COURSE_ANALYTICS = read_page("course_analytics.html")
_ADMIN = read_page("admin.html")


@blueprint.get("/dashboard")
async def dashboard_page() -> Response:
    return page_response(_DASHBOARD)


@blueprint.get("/courses/<int:course_id>/analytics")
async def course_analytics_page(course_id: int) -> Response:
    # One page for every course: the script reads the course id from the path.
    return page_response(_COURSE_ANALYTICS)


@blueprint.get("/admin")
async def admin_page() -> Response:
    return page_response(_ADMIN)
