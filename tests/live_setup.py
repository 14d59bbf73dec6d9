"""Courses for the live tests: a video with a known duration, a text, enrolled learners."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import httpx
import trio

from tests.lms.http.conftest import Login


@dataclass(frozen=True)
class Course:
    id: int
    video_id: int
    text_id: int


async def set_duration(database_url: str, content_id: int, seconds: float) -> None:
    """What the transcoder does once it has probed an upload."""

    async def update() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE contents SET duration_seconds = $2 WHERE id = $1", content_id, seconds
            )
        finally:
            await conn.close()

    # The node under test runs an asyncio loop in this thread (trio-asyncio); use another.
    await trio.to_thread.run_sync(asyncio.run, update())


async def make_course(
    api: httpx.AsyncClient, database_url: str, owner: Login, *learners: Login
) -> Course:
    # Players may run at 16x here, so a test's heartbeats sent back to back are credited (up to
    # 96 s at once: lms/domain/progress.py `credit`, GRACE).
    body = {"title": "Optics", "max_playback_rate": 16.0}
    course = (await api.post("/api/v1/courses", json=body, headers=owner.auth)).json()
    contents = f"/api/v1/courses/{course['id']}/contents"
    video = await api.post(contents, json={"title": "Lenses", "kind": "video"}, headers=owner.auth)
    text = await api.post(
        contents, json={"title": "Notes", "kind": "text", "body": "Read me"}, headers=owner.auth
    )
    await set_duration(database_url, video.json()["id"], 600.0)
    for learner in learners:
        enrolled = await api.post(f"/api/v1/courses/{course['id']}/enroll", headers=learner.auth)
        assert enrolled.status_code in (200, 201), enrolled.text
    return Course(course["id"], video.json()["id"], text.json()["id"])
