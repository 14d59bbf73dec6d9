"""`/api/v1/progress` against a real node and database: record, read back, refuse bad input."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from lms.domain.progress import GRACE
from tests.e2e.nodes import SECRET, NodeProcess, node_env, start_node
from tests.honest_player import Playhead, covered
from tests.lms.http.conftest import Login, log_in, sign_up
from tests.sql import sql

PROGRESS = "/api/v1/progress"
ANALYTICS = "/api/v1/dashboard/analytics/course"
DURATION = 600.0
# The kill test's load: every player heartbeats every video at once.
PLAYERS = 8
VIDEOS_EACH = 4


@dataclass(frozen=True)
class Course:
    id: int
    videos: list[int]  # in course order, each DURATION seconds long
    text: int  # last in course order


# The test course lets players run at up to 16x, so a test's heartbeats sent back to back are
# credited (up to 96 s at once: lms/domain/progress.py `credit`, GRACE); the tests of the rate
# itself make their course with the default.
FAST = 16.0


async def make_course(
    api: httpx.AsyncClient,
    dsn: str,
    owner: Login,
    videos: int = 2,
    title: str = "Optics",
    max_playback_rate: float = FAST,
) -> Course:
    body = {"title": title, "max_playback_rate": max_playback_rate}
    created = await api.post("/api/v1/courses", json=body, headers=owner.auth)
    assert created.status_code == 201, created.text
    base = f"/api/v1/courses/{created.json()['id']}/contents"
    ids = []
    for position, kind in enumerate(["video"] * videos + ["text"]):
        body = {"title": f"{kind} {position}", "kind": kind, "position": position}
        response = await api.post(base, json=body, headers=owner.auth)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    await sql(dsn, "UPDATE contents SET duration_seconds = $1 WHERE kind = 'video'", DURATION)
    return Course(created.json()["id"], ids[:-1], ids[-1])


async def a_day_later(api: httpx.AsyncClient, dsn: str, who: Login, content_id: int) -> None:
    """The learner opens the video (a heartbeat with nothing played) and a day passes, as far
    as credit goes: the row's `credited_at` (none yet, if nothing was credited: now) moves a
    day back in SQL (lms/domain/progress.py `credit`), so their next heartbeat may claim up to
    a day of playback. The row's version
    moves on too, so a node that remembers it reads it again, as after another node's write."""
    opened = await api.post(PROGRESS, json={"content_id": content_id}, headers=who.auth)
    assert opened.status_code == 200, opened.text
    await sql(
        dsn,
        """
        UPDATE progress
        SET credited_at = coalesce(credited_at, now()) - interval '1 day', version = version + 1
        WHERE user_id = $1 AND content_id = $2
        """,
        who.user_id,
        content_id,
    )


async def enrol(api: httpx.AsyncClient, who: Login, course: Course) -> None:
    response = await api.post(f"/api/v1/courses/{course.id}/enroll", headers=who.auth)
    assert response.status_code == 201, response.text


async def course_progress(api: httpx.AsyncClient, who: Login, course: Course) -> dict:
    response = await api.get(f"{PROGRESS}/course/{course.id}", headers=who.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_heartbeats_merge_into_the_stored_state_and_the_course_standing(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor)
    await enrol(api, learner, course)
    video = course.videos[0]
    for played, position in [([[0, 10]], 10), ([[10, 20.2]], 20.2), ([[300, 310]], 310)]:
        response = await api.post(
            PROGRESS,
            json={"content_id": video, "position": position, "played": played},
            headers=learner.auth,
        )
        assert response.status_code == 200, response.text
    state = response.json()
    assert state["played"] == [[0, 20.2], [300, 310]]
    assert state["watched_seconds"] == pytest.approx(30.2)
    assert state["coverage"] == pytest.approx(30.2 / DURATION)
    assert (state["position"], state["duration"], state["completed"]) == (310, DURATION, False)

    standing = await course_progress(api, learner, course)
    assert (standing["completed_contents"], standing["total_contents"]) == (0, 3)
    assert standing["next_content_id"] == video
    first = standing["contents"][0]
    assert (first["content_id"], first["position"], first["played"]) == (
        video,
        310,
        state["played"],
    )
    assert standing["contents"][1]["updated_at"] is None  # never opened


async def test_seeking_to_the_end_does_not_complete_a_video_but_watching_it_does(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor)
    await enrol(api, learner, course)
    video = course.videos[0]
    skipped = await api.post(
        PROGRESS,
        json={"content_id": video, "position": DURATION, "played": [[590, DURATION]]},
        headers=learner.auth,
    )
    assert skipped.json()["completed"] is False
    # 90% of the duration, played over the day since (the course's default threshold).
    await a_day_later(api, database_url, learner, video)
    minutes = [[m * 60.0, m * 60.0 + 60] for m in range(9)]
    watched = await api.post(
        PROGRESS, json={"content_id": video, "played": minutes}, headers=learner.auth
    )
    assert watched.json()["completed"] is True
    standing = await course_progress(api, learner, course)
    assert standing["completed_contents"] == 1
    assert standing["percent"] == pytest.approx(100 / 3)
    assert standing["next_content_id"] == course.videos[1]


async def test_a_heartbeat_claiming_a_whole_video_is_clamped_and_shown_to_the_instructor(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, max_playback_rate=2.0)
    await enrol(api, learner, course)
    video = course.videos[0]
    claim = {"content_id": video, "position": DURATION, "played": [[0, DURATION]]}
    faked = (await api.post(PROGRESS, json=claim, headers=learner.auth)).json()
    # A first heartbeat is credited the grace at 2x (the earliest seconds), the rest counted.
    assert faked["played"] == [[0, 2 * GRACE]]
    assert faked["completed"] is False
    assert faked["clamped_seconds"] == pytest.approx(DURATION - 2 * GRACE)
    again = (await api.post(PROGRESS, json=claim, headers=learner.auth)).json()
    assert again["watched_seconds"] < 2 * GRACE + 1  # a second or so more at 2x, no more
    assert (await course_progress(api, learner, course))["completed_contents"] == 0

    analytics = await api.get(f"{ANALYTICS}/{course.id}", headers=instructor.auth)
    assert analytics.status_code == 200, analytics.text
    [suspect] = analytics.json()["clamped"]
    assert suspect["user_id"] == learner.user_id
    assert suspect["clamped_seconds"] == pytest.approx(again["clamped_seconds"])
    assert suspect["clamped_seconds"] > 2 * (DURATION - 2 * GRACE) - 2


async def test_instructors_set_a_courses_rate_and_it_bounds_credit_between_heartbeats(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, max_playback_rate=2.0)
    path = f"/api/v1/courses/{course.id}"
    for rate in (0.5, 16.5, "4"):
        refused = await api.patch(path, json={"max_playback_rate": rate}, headers=instructor.auth)
        assert refused.status_code == 422, refused.text
        assert "max_playback_rate" in refused.json()["error"]["message"]
    patched = await api.patch(path, json={"max_playback_rate": 4.0}, headers=instructor.auth)
    assert patched.json()["max_playback_rate"] == 4.0
    await enrol(api, learner, course)
    video = course.videos[0]
    first = {"content_id": video, "played": [[0, 4 * GRACE]]}  # the grace at 4x, all of it
    opened = await api.post(PROGRESS, json=first, headers=learner.auth)
    assert opened.json()["clamped_seconds"] == 0
    # 100 s later (moved back in SQL): 400 s more at 4x are credited, the rest clamped.
    await sql(
        database_url,
        """
        UPDATE progress SET credited_at = credited_at - interval '100 seconds',
                            version = version + 1
        """,
    )
    rest = {"content_id": video, "played": [[4 * GRACE, DURATION]]}
    state = (await api.post(PROGRESS, json=rest, headers=learner.auth)).json()
    credited = state["watched_seconds"] - 4 * GRACE
    assert 400 <= credited <= 400 + 4 * 2  # and what the request itself took, at 4x
    assert state["clamped_seconds"] == pytest.approx(DURATION - 4 * GRACE - credited)
    assert state["completed"] is False


async def test_a_text_completes_when_the_learner_marks_it_read(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=0)
    await enrol(api, learner, course)
    opened = await api.post(PROGRESS, json={"content_id": course.text}, headers=learner.auth)
    assert opened.json()["completed"] is False
    read = await api.post(
        PROGRESS, json={"content_id": course.text, "completed": True}, headers=learner.auth
    )
    assert read.status_code == 200
    assert (read.json()["completed"], read.json()["coverage"]) == (True, 1.0)
    standing = await course_progress(api, learner, course)
    assert (standing["percent"], standing["next_content_id"]) == (100.0, None)


BAD_UPDATES = [
    ({"position": -1}, 422, "$.position"),
    ({"played": [[20, 10]]}, 422, "ends before it starts"),
    ({"played": [[0, DURATION + 30]]}, 422, "beyond the end"),
    ({"position": DURATION + 30}, 422, "beyond the end"),
    ({"played": [[0, 1]] * 65}, 422, "$.played"),
    ({"played": [[0, 1, 2]]}, 422, "$.played"),
    ({"completed": True}, 422, "completes by being watched"),
    ({"playback_rate": 0}, 422, "$.playback_rate"),
    ({"client_ts": "2030-01-01T00:00:00"}, 422, "timezone"),
    ({"speed": 2}, 422, "speed"),
    ({"content_id": 999_999}, 404, "no content"),
    ({"content_id": 2**63}, 422, "$.content_id"),
    ({"content_id": None}, 422, "$.content_id"),
]
# What Python's json module will not produce, sent as raw bytes.
BAD_BYTES = [
    (b'{"content_id": %d, "position": 1e400}', 422, "$.position"),
    (b'{"content_id": %d, "position": NaN}', 400, "not valid JSON"),
    (b'{"content_id": %d, "played": [[0, Infinity]]}', 400, "not valid JSON"),
    (b'{"content_id": %d, "position": ', 400, "not valid JSON"),
]


async def test_bad_updates_get_a_clear_4xx_and_leave_stored_progress_alone(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=1)
    await enrol(api, learner, course)
    video = course.videos[0]
    good = {"content_id": video, "position": 5, "played": [[0, 5]]}
    assert (await api.post(PROGRESS, json=good, headers=learner.auth)).status_code == 200
    before = await course_progress(api, learner, course)

    sent = [
        (as_json({"content_id": video} | body), status, words)
        for body, status, words in BAD_UPDATES
    ]
    sent += [(raw % video, status, words) for raw, status, words in BAD_BYTES]
    headers = learner.auth | {"Content-Type": "application/json"}
    for content, status, words in sent:
        response = await api.post(PROGRESS, content=content, headers=headers)
        assert response.status_code == status, (content, response.text)
        assert words in response.json()["error"]["message"], content
    long_device = headers | {"X-Device-Id": "d" * 200}
    response = await api.post(PROGRESS, content=as_json(good), headers=long_device)
    assert response.status_code == 422
    assert "device id" in response.json()["error"]["message"]
    assert await course_progress(api, learner, course) == before


def as_json(body: dict) -> bytes:
    return json.dumps(body).encode()


async def test_progress_on_a_video_still_processing_is_a_409(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=1)
    await enrol(api, learner, course)
    await sql(database_url, "UPDATE contents SET duration_seconds = NULL")
    response = await api.post(
        PROGRESS, json={"content_id": course.videos[0], "position": 3}, headers=learner.auth
    )
    assert response.status_code == 409
    assert "still being processed" in response.json()["error"]["message"]


async def test_only_enrolled_learners_record_and_read_progress(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    course = await make_course(api, database_url, instructor, videos=1)
    heartbeat = {"content_id": course.videos[0], "position": 3, "played": [[0, 3]]}
    # Not the learner before enrolling, nor the course's own instructor (a preview is not a
    # learner's progress), nor an anonymous caller.
    for who in (learner, instructor):
        response = await api.post(PROGRESS, json=heartbeat, headers=who.auth)
        assert response.status_code == 403, response.text
        assert "enrol" in response.json()["error"]["message"]
        read = await api.get(f"{PROGRESS}/course/{course.id}", headers=who.auth)
        assert read.status_code == 403
    assert (await api.post(PROGRESS, json=heartbeat)).status_code == 401
    assert (await api.get(f"{PROGRESS}/my/summary")).status_code == 401
    for missing in (999_999, 2**64):
        absent = await api.get(f"{PROGRESS}/course/{missing}", headers=learner.auth)
        assert absent.status_code == 404
    await enrol(api, learner, course)
    assert (await api.post(PROGRESS, json=heartbeat, headers=learner.auth)).status_code == 200


async def test_the_summary_covers_every_enrolled_course(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> None:
    texts = await make_course(api, database_url, instructor, videos=0, title="Reading")
    videos = await make_course(api, database_url, instructor, videos=2, title="Lectures")
    await make_course(api, database_url, instructor, videos=1, title="Not mine")
    for course in (texts, videos):
        await enrol(api, learner, course)
    empty = (await api.get(f"{PROGRESS}/my/summary", headers=learner.auth)).json()
    assert [c["title"] for c in empty["courses"]] == ["Reading", "Lectures"]
    assert (empty["completed_courses"], empty["watched_seconds"]) == (0, 0)

    await api.post(
        PROGRESS, json={"content_id": texts.text, "completed": True}, headers=learner.auth
    )
    await api.post(
        PROGRESS, json={"content_id": videos.videos[1], "played": [[0, 60]]}, headers=learner.auth
    )
    summary = (await api.get(f"{PROGRESS}/my/summary", headers=learner.auth)).json()
    reading, lectures = summary["courses"]
    assert (reading["percent"], reading["next_content_id"]) == (100.0, None)
    assert (lectures["percent"], lectures["next_content_id"]) == (0.0, videos.videos[0])
    assert (summary["completed_courses"], summary["watched_seconds"]) == (1, 60)
    assert lectures["last_activity_at"] is not None


@pytest.mark.e2e
async def test_acknowledged_progress_survives_a_kill_9_of_the_node(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = node_env(
        tmp_path, LMS_DATABASE_URL=database_url, LMS_REDIS_URL=redis_url, LMS_SECRET_KEY=SECRET
    )
    async with (
        running_node(env, tmp_path / "first.log") as node,
        httpx.AsyncClient(base_url=node.url, timeout=10) as api,
    ):
        await sign_up(api, "owner@test.lms")
        await sql(database_url, "UPDATE users SET role = 'instructor'")
        owner = await log_in(api, "owner@test.lms")  # a token with the new role
        course = await make_course(api, database_url, owner, videos=VIDEOS_EACH)
        learners = [await sign_up(api, f"player{i}@test.lms") for i in range(PLAYERS)]
        for learner in learners:
            await enrol(api, learner, course)
        killed = await play_until_killed(api, node, learners, course.videos)
    # Killed mid-batch: most of the heartbeat streams had one sent and not yet answered.
    assert killed.in_flight >= PLAYERS * VIDEOS_EACH // 2

    async with (
        running_node(env, tmp_path / "second.log") as node,
        httpx.AsyncClient(base_url=node.url, timeout=10) as api,
    ):
        for player in learners:  # their tokens are still good: same secret
            contents = (await course_progress(api, player, course))["contents"]
            for video, content in zip(course.videos, contents[:VIDEOS_EACH], strict=True):
                playhead = killed.playheads[player.user_id, video]
                stored = [tuple(s) for s in content["played"]]
                assert [s for s in playhead.acknowledged if not covered(s, stored)] == []


@dataclass
class Killed:
    """What the players saw of a node killed under them."""

    playheads: dict[tuple[int, int], Playhead]  # by (player, video): the acknowledged segments
    in_flight: int  # heartbeats sent before the kill and never answered


async def play_until_killed(
    api: httpx.AsyncClient, node: NodeProcess, learners: list[Login], videos: list[int]
) -> Killed:
    """Every player heartbeats every video at once, back to back, until 200 heartbeats are
    acknowledged; then the node gets SIGKILL, with as many in flight."""
    killed = Killed({}, 0)
    killed_at = trio.Event()
    enough = trio.Event()

    async def play(player: Login, video: int) -> None:
        playhead = killed.playheads[player.user_id, video] = Playhead()
        while not killed_at.is_set():
            body = await playhead.next_heartbeat(video)
            sent_before_the_kill = not killed_at.is_set()
            try:
                response = await api.post(PROGRESS, json=body, headers=player.auth)
            except httpx.TransportError:
                # The node died under this request: not acknowledged, may be lost.
                killed.in_flight += sent_before_the_kill
                return
            assert response.status_code == 200, response.text
            playhead.acknowledge(body)
            if sum(len(p.acknowledged) for p in killed.playheads.values()) >= 200:
                enough.set()

    async with trio.open_nursery() as nursery:
        for player in learners:
            for video in videos:
                nursery.start_soon(play, player, video)
        await enough.wait()
        node.process.send_signal(signal.SIGKILL)
        killed_at.set()
    return killed


@asynccontextmanager
async def running_node(env: dict[str, str], log: Path) -> AsyncIterator[NodeProcess]:
    """A node process, stopped at the end however the block ends (unless it is dead already)."""
    node = await start_node(env, log)
    try:
        yield node
    finally:
        with trio.CancelScope(shield=True):
            if node.process.returncode is None:
                await node.stop()
            await node.process.wait()
