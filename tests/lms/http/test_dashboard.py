"""`/api/v1/dashboard` against a real node, PostgreSQL and Redis: each dashboard answers from
the cache, and the next read after a write (progress, enrolment, completion, content edit, role
or time-zone change) reflects it; access control, bad parameters and edge cases."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
import pytest
import structlog
import trio

from lms import commands
from lms.config import Settings
from lms.node import serve
from tests.lms.http.conftest import PASSWORD, Login, log_in, make_instructor, sign_up
from tests.lms.http.test_progress import (
    DURATION,
    PROGRESS,
    Course,
    a_day_later,
    enrol,
    make_course,
)
from tests.polling import eventually
from tests.slow_link import slow_link

DASHBOARD = "/api/v1/dashboard"


async def get(api: httpx.AsyncClient, who: Login, path: str, status: int = 200) -> dict:
    response = await api.get(DASHBOARD + path, headers=who.auth)
    assert response.status_code == status, response.text
    return response.json()


async def watch(
    api: httpx.AsyncClient, dsn: str, who: Login, content_id: int, *played: list[float]
) -> dict:
    """A heartbeat with `played`, a day after the learner opened the video (so it is credited
    whole, however long: `a_day_later`)."""
    await a_day_later(api, dsn, who, content_id)
    response = await api.post(
        PROGRESS,
        json={"content_id": content_id, "position": played[-1][1], "played": list(played)},
        headers=who.auth,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_learner_dashboard_follows_every_write_on_the_next_read(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=2)
    await enrol(api, learner, course)
    before = await get(api, learner, "/stats")
    assert before["watched_seconds"] == 0
    assert (before["courses_not_started"], before["current_streak"]) == (1, 0)
    assert before["resume"][0]["content_id"] == course.videos[0]

    await watch(api, database_url, learner, course.videos[1], [0, 30])  # progress
    stats = await get(api, learner, "/stats")
    assert stats["watched_seconds"] == pytest.approx(30)
    assert (stats["courses_in_progress"], stats["current_streak"], stats["longest_streak"]) == (
        1,
        1,
        1,
    )
    assert [(a["kind"], a["content_id"]) for a in stats["recent_activity"]] == [
        ("started", course.videos[1])
    ]
    resume = stats["resume"][0]
    assert (resume["content_id"], resume["position"]) == (course.videos[1], 30)

    for video in course.videos:  # completion
        await watch(api, database_url, learner, video, [0, DURATION])
    done = await api.post(
        PROGRESS, json={"content_id": course.text, "completed": True}, headers=learner.auth
    )
    assert done.status_code == 200
    stats = await get(api, learner, "/stats")
    assert (stats["courses_completed"], stats["courses_in_progress"]) == (1, 0)
    assert stats["resume"] == []
    assert stats["recent_activity"][0]["kind"] == "course_finished"
    assert {a["kind"] for a in stats["recent_activity"]} == {
        "course_finished",
        "completed",
        "started",
    }

    added = await api.post(  # a content edit in the course
        f"/api/v1/courses/{course.id}/contents",
        json={"title": "Epilogue", "kind": "text", "position": 9},
        headers=instructor.auth,
    )
    assert added.status_code == 201
    stats = await get(api, learner, "/stats")
    assert (stats["courses_completed"], stats["courses_in_progress"]) == (0, 1)
    assert stats["resume"][0]["content_id"] == added.json()["id"]

    other = await make_course(api, database_url, instructor, videos=1, title="Acoustics")
    await enrol(api, learner, other)  # an enrolment
    stats = await get(api, learner, "/stats")
    assert stats["courses_not_started"] == 1
    assert {r["course_id"] for r in stats["resume"]} == {course.id, other.id}


async def test_streaks_are_counted_in_the_learners_time_zone_from_their_next_read(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=1)
    await enrol(api, learner, course)
    # The same hour of three days running: three local days in any zone.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [now - timedelta(days=d) for d in range(3)]
    await seed_activity(database_url, learner.user_id, course, hours)
    stats = await get(api, learner, "/stats")
    assert (stats["time_zone"], stats["current_streak"], stats["longest_streak"]) == ("UTC", 3, 3)

    changed = await api.patch(
        "/api/v1/users/me", json={"time_zone": "Asia/Tokyo"}, headers=learner.auth
    )
    assert changed.status_code == 200
    stats = await get(api, learner, "/stats")
    assert (stats["time_zone"], stats["longest_streak"]) == ("Asia/Tokyo", 3)


async def seed_activity(
    dsn: str, user_id: int, course: Course, hours: list[datetime], seconds: float = 60
) -> None:
    """Hours of watching written straight into PostgreSQL, as the progress writer would."""

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.executemany(
                """
                INSERT INTO activity_hourly (user_id, content_id, hour, course_id, watched_seconds)
                VALUES ($1, $2, $3, $4, $5)
                """,
                [(user_id, course.videos[0], hour, course.id, seconds) for hour in hours],
            )
        finally:
            await conn.close()

    await trio.to_thread.run_sync(asyncio.run, run())


async def test_the_progress_chart_follows_heartbeats_and_checks_its_parameters(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=1)
    await enrol(api, learner, course)
    chart = await get(api, learner, "/analytics/progress")
    assert (chart["bucket"], len(chart["buckets"]), chart["watched_seconds"]) == ("day", 30, 0)
    today = date.fromisoformat(chart["last"])
    assert date.fromisoformat(chart["first"]) == today - timedelta(days=29)

    await watch(api, database_url, learner, course.videos[0], [0, 45])
    chart = await get(api, learner, "/analytics/progress")
    assert chart["buckets"][-1] == {"start": str(today), "watched_seconds": 45, "completions": 0}
    weekly = await get(
        api,
        learner,
        f"/analytics/progress?from={today - timedelta(days=13)}&to={today}&bucket=week",
    )
    assert weekly["bucket"] == "week"
    assert weekly["watched_seconds"] == 45
    assert 2 <= len(weekly["buckets"]) <= 3

    for query, named in [
        ("from=yesterday", "'from'"),
        ("to=2024-13-01", "'to'"),
        ("bucket=month", "'bucket'"),
        ("from=2024-02-01&to=2024-01-01", "'from' and 'to'"),
        ("from=2000-01-01&to=2024-01-01", "'from' and 'to'"),
    ]:
        response = await api.get(f"{DASHBOARD}/analytics/progress?{query}", headers=learner.auth)
        assert response.status_code == 422, query
        assert named in response.json()["error"]["message"], query


async def test_an_empty_user_gets_an_empty_dashboard(
    api: httpx.AsyncClient, learner: Login
) -> None:
    stats = await get(api, learner, "/stats")
    assert stats == {
        **stats,
        "courses_in_progress": 0,
        "courses_completed": 0,
        "courses_not_started": 0,
        "watched_seconds": 0,
        "current_streak": 0,
        "longest_streak": 0,
        "recent_activity": [],
        "resume": [],
        "time_zone": "UTC",
    }
    chart = await get(api, learner, "/analytics/progress?bucket=week")
    assert chart["watched_seconds"] == 0
    assert chart["completions"] == 0


async def test_course_analytics_follow_progress_enrolments_and_content_edits(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=2)
    await enrol(api, learner, course)
    path = f"/analytics/course/{course.id}"
    before = await get(api, instructor, path)
    assert before["enrolled"] == 1
    assert [step["started"] for step in before["funnel"]] == [0, 0, 0]
    untouched = before["videos"][1]  # a video nobody watched
    assert (untouched["viewers"], untouched["drop_offs"]) == (0, [])
    assert len(untouched["retention"]) == DURATION
    assert set(untouched["retention"]) == {0}

    await watch(api, database_url, learner, course.videos[0], [0, 120])
    after = await get(api, instructor, path)
    assert after["active_learners"] == {"day": 1, "week": 1, "month": 1}
    first = after["funnel"][0]
    assert (first["started"], first["started_share"]) == (1, 1.0)
    assert first["coverage"] == pytest.approx(120 / DURATION)
    curve = after["videos"][0]["retention"]
    assert (curve[0], curve[119], curve[120]) == (1.0, 1.0, 0.0)
    assert after["videos"][0]["drop_offs"][0]["at"] == 120

    second = await sign_up(api, "second@test.lms")
    await enrol(api, second, course)
    assert (await get(api, instructor, path))["enrolled"] == 2

    await watch(api, database_url, learner, course.videos[0], [0, DURATION])  # a completion
    funnel = (await get(api, instructor, path))["funnel"]
    assert (funnel[0]["completed"], funnel[0]["completed_share"]) == (1, 0.5)

    removed = await api.delete(
        f"/api/v1/courses/{course.id}/contents/{course.videos[1]}", headers=instructor.auth
    )
    assert removed.status_code == 204
    edited = await get(api, instructor, path)
    assert [step["content_id"] for step in edited["funnel"]] == [course.videos[0], course.text]
    assert [video["content_id"] for video in edited["videos"]] == [course.videos[0]]


async def test_course_analytics_are_for_its_instructor_and_admins_only(
    api: httpx.AsyncClient, database_url: str, admin: Login, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=0)  # no videos
    await enrol(api, learner, course)
    path = f"/analytics/course/{course.id}"
    answer = await get(api, admin, path)
    assert (answer["videos"], answer["coverage"]) == ([], None)
    assert answer == await get(api, instructor, path)
    other = await make_instructor(api, admin, "other@test.lms")
    for who in (learner, other):  # answered from the cache, still refused
        refused = await api.get(DASHBOARD + path, headers=who.auth)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
    assert (
        await api.get(DASHBOARD + "/analytics/course/999999", headers=admin.auth)
    ).status_code == 404
    assert (await api.get(DASHBOARD + path)).status_code == 401


async def test_a_warm_course_analytics_read_sends_the_same_json_as_the_cold_one(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=2)
    await enrol(api, learner, course)
    await watch(api, database_url, learner, course.videos[0], [0, 120])
    path = DASHBOARD + f"/analytics/course/{course.id}"
    cold = await api.get(path, headers=instructor.auth)  # computed: nobody asked before
    warm = await api.get(path, headers=instructor.auth)
    for response in (cold, warm):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
    assert warm.content == cold.content
    assert cold.json()["videos"][0]["drop_offs"][0]["at"] == 120


async def test_the_admin_dashboard_follows_users_enrolments_and_progress(
    api: httpx.AsyncClient, database_url: str, admin: Login, instructor: Login, learner: Login
) -> None:
    refused = await api.get(DASHBOARD + "/admin", headers=instructor.auth)
    assert refused.status_code == 403
    course = await make_course(api, database_url, instructor, videos=1)
    before = await get(api, admin, "/admin")
    assert before["users_by_role"] == {"admin": 1, "instructor": 1, "learner": 1}
    assert before["transcode_queue"]["failed"] == 0
    assert before["top_courses"][0]["enrolled"] == 0

    await sign_up(api, "newcomer@test.lms")
    assert (await get(api, admin, "/admin"))["users"] == 4
    await enrol(api, learner, course)
    top = (await get(api, admin, "/admin"))["top_courses"][0]
    assert (top["course_id"], top["enrolled"]) == (course.id, 1)
    await watch(api, database_url, learner, course.videos[0], [0, DURATION])
    after = await get(api, admin, "/admin")
    assert (after["completions"], after["watched_seconds"]) == (1, DURATION)
    assert after["active_users"]["day"] == 1
    promoted = await api.patch(
        f"/api/v1/users/{learner.user_id}", json={"role": "instructor"}, headers=admin.auth
    )
    assert promoted.status_code == 200
    roles = (await get(api, admin, "/admin"))["users_by_role"]
    assert roles == {"admin": 1, "instructor": 2, "learner": 1}


async def test_a_learner_with_ten_thousand_progress_rows_gets_their_dashboard(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=0)
    await enrol(api, learner, course)
    await seed_contents_watched(database_url, learner.user_id, course.id, 10_000)
    started = time.perf_counter()
    stats = await get(api, learner, "/stats")
    cold = time.perf_counter() - started
    assert stats["courses_in_progress"] == 1
    assert stats["watched_seconds"] == pytest.approx(10_000 * 30)
    assert stats["resume"][0]["percent"] == pytest.approx(100 * 5_000 / 10_001)
    assert len(stats["recent_activity"]) == 10
    assert cold < 5, f"the first read took {cold:.2f} s"
    chart = await get(api, learner, "/analytics/progress")
    assert chart["completions"] == 5_000


async def seed_contents_watched(dsn: str, user_id: int, course_id: int, n: int) -> None:
    """`n` videos in the course, each with the learner's progress (every other one completed)
    and an hour of activity, written straight into PostgreSQL."""

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                ids = await conn.fetch(
                    """
                    INSERT INTO contents (course_id, title, kind, position, duration_seconds)
                    SELECT $1, 'video ' || i, 'video', 100 + i, 60 FROM generate_series(1, $2) i
                    RETURNING id
                    """,
                    course_id,
                    n,
                )
                await conn.execute(
                    """
                    INSERT INTO progress (user_id, content_id, course_id, position, played,
                                          watched_seconds, duration, completed_at, updated_at)
                    SELECT $1, c, $2, 30, '{0,30}', 30, 60,
                           CASE WHEN c % 2 = 0 THEN now() END, now()
                    FROM unnest($3::bigint[]) c
                    """,
                    user_id,
                    course_id,
                    [row["id"] for row in ids],
                )
                await conn.execute(
                    """
                    INSERT INTO activity_hourly (user_id, content_id, hour, course_id,
                                                 watched_seconds, completions)
                    SELECT $1, c, date_trunc('hour', now()), $2, 30, (c % 2 = 0)::int
                    FROM unnest($3::bigint[]) c
                    """,
                    user_id,
                    course_id,
                    [row["id"] for row in ids],
                )
        finally:
            await conn.close()

    await trio.to_thread.run_sync(asyncio.run, run())


async def test_the_next_read_after_an_acknowledged_heartbeat_is_fresh_every_time(
    nursery: trio.Nursery, settings: Settings, redis_url: str, database_url: str
) -> None:
    """The writer invalidates before it answers, so a client's next read cannot slip in
    before the invalidation, however far Redis is. With Redis 10 ms away, an invalidation made
    after the answer loses that race on every turn."""
    async with slow_link(redis_url, 0.01) as far_redis:
        node = await nursery.start(serve, replace(settings, redis_url=far_redis))
        async with httpx.AsyncClient(base_url=node, timeout=10) as api:
            await commands.create_admin(settings, "admin@test.lms", PASSWORD)
            admin = await log_in(api, "admin@test.lms")
            instructor = await make_instructor(api, admin, "teacher@test.lms")
            learner = await sign_up(api, "learner@test.lms")
            course = await make_course(api, database_url, instructor, videos=1)
            await enrol(api, learner, course)
            path = f"/analytics/course/{course.id}"
            for turn in range(1, 51):
                await get(api, learner, "/stats")  # both cached before each heartbeat
                await get(api, instructor, path)
                await watch(api, database_url, learner, course.videos[0], [0, 10 * turn])
                stats = await get(api, learner, "/stats")
                assert stats["watched_seconds"] == 10 * turn, f"stale after heartbeat {turn}"
                coverage = (await get(api, instructor, path))["funnel"][0]["coverage"]
                assert coverage == pytest.approx(10 * turn / DURATION), f"stale, turn {turn}"


async def test_a_starting_node_warms_the_busiest_courses_analytics_while_it_serves(
    nursery: trio.Nursery,
    api: httpx.AsyncClient,
    settings: Settings,
    database_url: str,
    instructor: Login,
    learner: Login,
) -> None:
    courses = [await make_course(api, database_url, instructor, videos=1) for _ in range(11)]
    # Course i watched i minutes in the last hour by one learner: the first is the quietest.
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for minutes, course in enumerate(courses, start=1):
        await seed_activity(database_url, learner.user_id, course, [hour], seconds=60 * minutes)

    with structlog.testing.capture_logs() as logs:

        async def warm_ups() -> list[int]:
            return [e["courses"] for e in logs if e["event"] == "cache_warmed"]

        async with activity_locked(database_url):
            # The warm-up waits on the lock; the node serves regardless.
            with trio.fail_after(30):
                second = await nursery.start(serve, replace(settings, node_id="second"))
            async with httpx.AsyncClient(base_url=second, timeout=10) as other:
                assert (await other.get("/health")).status_code == 200
            assert await warm_ups() == []
        assert await eventually(warm_ups, bool) == [10]

    asked_at = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=second, timeout=10) as other:
        for course in courses:
            answer = await get(other, instructor, f"/analytics/course/{course.id}")
            computed_at = datetime.fromisoformat(answer["computed_at"])
            # The ten busiest were computed before anyone asked; the quietest on demand.
            assert (computed_at < asked_at) is (course != courses[0]), course


@asynccontextmanager
async def activity_locked(dsn: str) -> AsyncIterator[None]:
    """`activity_hourly` locked against every reader (ACCESS EXCLUSIVE, in a transaction held
    open on another thread) until the block ends."""
    locked, release = threading.Event(), threading.Event()

    async def hold() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE activity_hourly IN ACCESS EXCLUSIVE MODE")
                locked.set()
                await asyncio.get_running_loop().run_in_executor(None, release.wait)
        finally:
            await conn.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, asyncio.run, hold())
        try:
            await trio.to_thread.run_sync(locked.wait)
            yield
        finally:
            release.set()
