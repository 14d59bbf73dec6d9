"""The player page (`/watch/{content_id}`) in headless Chromium against a real node that
transcodes the uploads itself, with hls.js forced (`?engine=hlsjs`): a learner plays, seeks,
pauses and comes back where they were, their heartbeats in PostgreSQL; a page opened while the
video transcodes plays before the job ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
import trio

from media.synthetic import write_clip
from tests.e2e.admins import Admin, create_admin, signed_in
from tests.e2e.nodes import SECRET, NodeProcess, node_env, start_node
from tests.e2e.page_drivers import next_report, page_driver
from tests.lms.http.conftest import PASSWORD, Login, sign_up

pytestmark = pytest.mark.e2e

DEADLINE = 60.0
SHORT_SECONDS = 12.0
# Long enough that its transcode (several seconds here) is still running when the page plays.
LONG_SECONDS = 30.0


@pytest.fixture
def env(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    return node_env(
        tmp_path / "data",
        LMS_DATABASE_URL=database_url,
        LMS_REDIS_URL=redis_url,
        LMS_SECRET_KEY=SECRET,
        LMS_TRANSCODE_WORKERS="1",
    )


@asynccontextmanager
async def lecture_node(
    env: dict[str, str], tmp_path: Path, clip: Path, seconds: float, **size: int
) -> AsyncIterator[NodeProcess]:
    """A node and its admin, with the clip written meanwhile (PyAV takes a few seconds)."""
    started: list[NodeProcess] = []

    async def start() -> None:
        started.append(await start_node(env, tmp_path / "node.log"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(start)
        nursery.start_soon(create_admin, env)
        nursery.start_soon(
            trio.to_thread.run_sync, lambda: write_clip(clip, seconds=seconds, fps=25, **size)
        )
    node = started[0]
    try:
        yield node
    finally:
        code = await node.stop()
    assert code == 0, node.log()


async def video_for_learner(admin: Admin) -> tuple[int, int, Login]:
    """A course with one video content and an enrolled learner: (course id, content id, learner)."""
    course = (
        await admin.client.post("/api/v1/courses", json={"title": "Optics"}, headers=admin.auth)
    ).json()
    content = await admin.client.post(
        f"/api/v1/courses/{course['id']}/contents",
        json={"title": "Lenses", "kind": "video"},
        headers=admin.auth,
    )
    learner = await sign_up(admin.client, "learner@x.org", name="Grace Hopper")
    enrolled = await admin.client.post(
        f"/api/v1/courses/{course['id']}/enroll", headers=learner.auth
    )
    assert enrolled.status_code in (200, 201), enrolled.text
    return course["id"], content.json()["id"], learner


async def upload(admin: Admin, course_id: int, content_id: int, clip: Path) -> dict:
    response = await admin.client.post(
        f"/api/v1/courses/{course_id}/contents/{content_id}/video",
        files={"file": (clip.name, await trio.Path(clip).read_bytes(), "video/mp4")},
        headers=admin.auth,
    )
    assert response.status_code == 202, response.text
    return response.json()


def browser(*args: str, log_path: Path) -> AbstractAsyncContextManager[AsyncIterator[dict]]:
    """tests/e2e/watch_page_driver.py and the JSON lines it prints; it must exit 0."""
    return page_driver("tests.e2e.watch_page_driver", *args, log_path=log_path, deadline=DEADLINE)


async def stored_progress(database_url: str, user_id: int, content_id: int) -> asyncpg.Record:
    async def read() -> asyncpg.Record:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchrow(
                "SELECT position, played FROM progress WHERE user_id = $1 AND content_id = $2",
                user_id,
                content_id,
            )
        finally:
            await conn.close()

    # asyncpg needs an asyncio loop: one of its own, in a thread, beside the test's trio loop.
    return await trio.to_thread.run_sync(asyncio.run, read())


def pairs(flat: list[float]) -> list[tuple[float, float]]:
    return list(zip(flat[::2], flat[1::2], strict=True))


async def test_a_learner_plays_seeks_and_comes_back_where_they_paused_with_progress_stored(
    env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    clip = tmp_path / "lecture.mp4"
    async with lecture_node(env, tmp_path, clip, SHORT_SECONDS, width=854, height=480) as node:
        async with signed_in(node.url) as admin:
            course_id, content_id, learner = await video_for_learner(admin)
            await upload(admin, course_id, content_id, clip)
            await admin.ready(content_id)
        url = f"{node.url}/watch/{content_id}?engine=hlsjs"
        log_path = tmp_path / "browser.log"
        async with browser("watch", url, learner.email, PASSWORD, log_path=log_path) as reports:
            playing = await next_report(reports, log_path)
            seeked = await next_report(reports, log_path)
            saved = await next_report(reports, log_path)
            reloaded = await next_report(reports, log_path)
        row = await stored_progress(database_url, learner.user_id, content_id)

    assert playing["engine"] == "hlsjs"
    assert playing["readyState"] >= 3
    assert playing["currentTime"] > 1.5
    auto, *qualities = playing["qualities"]
    assert auto.startswith("auto")
    assert qualities == ["480p", "360p"]
    # The storyboard's tile of the middle showed while hovering there; the click landed there.
    middle = SHORT_SECONDS / 2
    tile = seeked["tile"]
    assert tile["seconds"] == pytest.approx(middle, abs=0.5)
    assert "storyboard.jpg" in tile["image"]
    assert tile["loads"] == "image/jpeg"
    assert tile["position"] != "0px 0px"  # a tile from the middle of the sprite
    assert seeked["target"] == pytest.approx(middle, abs=0.5)
    assert seeked["currentTime"] == pytest.approx(seeked["target"], abs=1.0)
    # Paused past the middle; the reloaded page starts there again.
    assert saved["paused"]
    assert saved["saved"] > middle + 1
    assert reloaded["currentTime"] == pytest.approx(saved["saved"], abs=1.0)
    # The heartbeats in PostgreSQL: the position, and what played, without the part skipped:
    assert row is not None
    assert row["position"] == pytest.approx(saved["saved"], abs=0.01)
    played = pairs(row["played"])
    # from the start to where the seek left (its last timeupdate, a few hundred ms before),
    before_seek = playing["currentTime"] - 0.5
    assert any(start <= 0.5 and end >= before_seek for start, end in played), played
    # and from where it landed to where it paused.
    landed = seeked["target"]
    assert any(abs(start - landed) < 1.0 and end >= middle + 1 for start, end in played), played
    assert not any(start <= middle - 1.5 <= end for start, end in played), played


async def test_a_page_opened_while_the_video_transcodes_plays_before_the_job_ends(
    env: dict[str, str], tmp_path: Path
) -> None:
    clip = tmp_path / "long.mp4"
    url = "{node}/watch/{content}?engine=hlsjs"
    log_path = tmp_path / "browser.log"
    async with (
        lecture_node(env, tmp_path, clip, LONG_SECONDS, width=960, height=540) as node,
        signed_in(node.url) as admin,
    ):
        course_id, content_id, learner = await video_for_learner(admin)
        job = await upload(admin, course_id, content_id, clip)
        page = url.format(node=node.url, content=content_id)
        async with browser("early", page, learner.email, PASSWORD, log_path=log_path) as reports:
            transcoding = await next_report(reports, log_path)
            playing = await next_report(reports, log_path)
            published = await next_report(reports, log_path)
        done = (await admin.client.get(f"/api/v1/jobs/{job['id']}", headers=admin.auth)).json()

    assert transcoding["label"].startswith("Transcoding, ")
    assert playing["readyState"] >= 3
    assert playing["currentTime"] > 1.5
    # It played past 1.5 s before the job finished.
    assert done["state"] == "done"
    assert playing["at"] < datetime.fromisoformat(done["finished_at"]).timestamp()
    # Once the job published its files, the page moved onto them and played on.
    assert published["label_hidden"]
    assert not published["paused"]
    assert published["currentTime"] > playing["currentTime"] + 1
