"""The dashboards' pages (`/dashboard`, `/courses/{id}/analytics`, `/admin`) in headless Chromium
against a real node: their uPlot charts draw, the navigation bar offers what each role may open,
one sign-in carries across pages and tabs and renews itself, and a learner's heartbeat shows on
the instructor's open analytics page within a couple of seconds, without a reload."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from tests.e2e.admins import ADMIN, create_admin
from tests.e2e.nodes import SECRET, NodeProcess, node_env, start_node
from tests.e2e.page_drivers import next_report, page_driver
from tests.live_setup import Course, make_course
from tests.lms.http.conftest import PASSWORD, Login, log_in, make_instructor, sign_up

pytestmark = pytest.mark.e2e

DEADLINE = 60.0
# From the heartbeat's answer to the page showing it: the frame, one refetch, one redraw.
LIVE_WITHIN = 2.5
ACCESS_TOKEN_TTL = 10  # seconds, the shortest the node takes: the page renews it at 8


@dataclass
class School:
    node: NodeProcess
    api: httpx.AsyncClient
    instructor: Login
    learner: Login
    course: Course


@pytest.fixture
async def school(database_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[School]:
    """A node, its admin, an instructor's course (a 600 s video and a text) with one learner."""
    env = node_env(
        tmp_path / "data",
        LMS_DATABASE_URL=database_url,
        LMS_REDIS_URL=redis_url,
        LMS_SECRET_KEY=SECRET,
        LMS_ACCESS_TOKEN_TTL=str(ACCESS_TOKEN_TTL),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(create_admin, env)
        node = await start_node(env, tmp_path / "node.log")
    try:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as api:
            admin = await log_in(api, ADMIN[0], ADMIN[1])
            instructor = await make_instructor(api, admin, "teacher@x.org")
            learner = await sign_up(api, "learner@x.org", name="Grace Hopper")
            course = await make_course(api, database_url, instructor, learner)
            yield School(node, api, instructor, learner, course)
    finally:
        assert await node.stop() == 0, node.log()


async def heartbeat(school: School, played: list[list[float]]) -> None:
    """The learner's player says what it played of the course's video (HTTP heartbeat)."""
    update = {"content_id": school.course.video_id, "position": played[-1][1], "played": played}
    response = await school.api.post("/api/v1/progress", json=update, headers=school.learner.auth)
    assert response.status_code == 200, response.text


def driver(*args: str, log_path: Path) -> AbstractAsyncContextManager[AsyncIterator[dict]]:
    """tests/e2e/dashboard_page_driver.py and the JSON lines it prints; it must exit 0."""
    return page_driver(
        "tests.e2e.dashboard_page_driver", *args, log_path=log_path, deadline=DEADLINE
    )


async def test_a_learners_heartbeat_shows_on_the_instructors_retention_chart_within_seconds(
    school: School, tmp_path: Path
) -> None:
    log_path = tmp_path / "browser.log"
    course, video = school.course.id, school.course.video_id
    args = [
        "analytics",
        school.node.url,
        school.instructor.email,
        PASSWORD,
        str(course),
        str(video),
    ]
    async with driver(*args, log_path=log_path) as reports:
        before = await next_report(reports, log_path)
        # A first heartbeat: within the grace it is credited whole (96 s at the course's 16x).
        await heartbeat(school, [[0.0, 90.0]])
        with trio.fail_after(LIVE_WITHIN):
            after = await next_report(reports, log_path)

    assert before["viewers"] == 0
    assert before["enrolled"] == "1"
    assert before["title"] == "Analytics: Optics"
    assert not before["login_shown"]
    # An instructor's bar: their dashboard, and their course's analytics and live room.
    assert before["nav"] == [
        "/dashboard",
        "/dashboard",
        f"/courses/{course}/analytics",
        f"/live/{course}",
    ]
    assert after["same_page"]
    assert after["viewers"] == 1
    # The curve rose to 100% for the first 90 s: far more of it is coloured than the flat line.
    assert after["retention"] > 4 * max(before["retention"], 1)
    # The funnel drew its "started" bar for the video.
    assert after["funnel"] > 0
    # The fall from everyone to nobody at 1:30 is the steepest drop-off, marked on the chart.
    assert after["drops"][:1] == ["at 1:30: -100% (1:25 to 1:30)"], after["drops"]


async def the_node_figures_are_the_nodes_own(school: School, admin: dict) -> None:
    """The admin page's "This node" section shows the figures the node itself reports
    (`GET /api/v1/monitoring/stats`, read after the page: counters only grew since)."""
    login = await log_in(school.api, ADMIN[0], ADMIN[1])
    stats = (await school.api.get("/api/v1/monitoring/stats", headers=login.auth)).json()
    families = {family["name"]: family for family in stats["metrics"]}

    def samples(name: str) -> list[dict]:
        return [s for s in families[name]["samples"] if s["name"] == name]

    def total(name: str) -> int:
        return round(sum(s["value"] for s in samples(name)))

    shown = admin["node_figures"]
    assert admin["node_id"] == stats["node_id"]
    assert set(shown) == {
        "requests", "websockets", "rooms", "sessions", "progress",
        "transcode", "cache", "mail", "db", "restarts",
    }  # fmt: skip
    assert 0 < int(shown["requests"]) <= total("lms_http_requests_total")
    assert shown["progress"] == str(total("lms_progress_updates_total")) == "1"
    assert shown["restarts"] == "0"
    # The school's video has no job: no state holds one.
    assert [s["value"] for s in samples("lms_transcode_jobs") if s["value"]] == []
    assert shown["transcode"] == "0"
    assert re.fullmatch(rf"\d+ / {total('lms_db_pool_max')}", shown["db"]), shown["db"]
    assert re.fullmatch(r"memory (\d+%|—) · redis (\d+%|—)", shown["cache"]), shown["cache"]
    assert re.fullmatch(r"sent \d+ · retried 0 · dead 0", shown["mail"]), shown["mail"]
    for live in ("websockets", "rooms", "sessions"):
        assert shown[live].isdigit()


async def test_one_sign_in_carries_across_pages_and_tabs_and_each_role_sees_its_own_entries(
    school: School, tmp_path: Path
) -> None:
    await heartbeat(school, [[0.0, 90.0]])
    log_path = tmp_path / "browser.log"
    learner_login = [school.learner.email, PASSWORD]
    args = ["roles", school.node.url, *ADMIN, *learner_login, str(school.course.id)]
    async with driver(*args, log_path=log_path) as reports:
        admin = await next_report(reports, log_path)
        renewed = await next_report(reports, log_path)
        recovered = await next_report(reports, log_path)
        learner = await next_report(reports, log_path)

    assert admin["nav"] == ["/dashboard", "/dashboard", "/admin", "/admin/jobs", "/docs"]
    assert admin["users"] == "3"  # the admin, the instructor, the learner
    await the_node_figures_are_the_nodes_own(school, admin)
    assert admin["live_title"] == "Live: Optics"
    assert admin["logins"] == 1
    assert admin["login_shown"] == [False, False]
    assert renewed == {
        "phase": "renewed",
        "status": 200,
        "access_changed": True,
        "refresh_changed": True,
    }
    assert recovered == {"phase": "recovered", "status": 200, "login_shown": False, "logins": 1}
    assert learner["nav"] == ["/dashboard", "/dashboard"]
    assert learner["watch_chart"] > 0
    assert learner["resume"] == f"/watch/{school.course.video_id}"
    assert learner["watched"] == "2 min"
    assert learner["streak"] == "1 day"
    assert learner["in_progress"] == "1"
