"""The instructor's live room page in headless Chromium against a real node: a learner's
heartbeat, sent by a trio-websocket client, shows up on the page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from tests.e2e.nodes import SECRET, node_env, output_lines, run_cli, start_node
from tests.live_client import live_socket, progress_path
from tests.live_setup import make_course
from tests.lms.http.conftest import PASSWORD, log_in, make_instructor, sign_up

pytestmark = pytest.mark.e2e

DEADLINE = 60.0


async def test_a_learners_heartbeat_shows_up_on_the_instructors_live_page(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = node_env(
        tmp_path, LMS_DATABASE_URL=database_url, LMS_REDIS_URL=redis_url, LMS_SECRET_KEY=SECRET
    )
    created = await run_cli("createadmin", "--email", "root@x.org", "--password", PASSWORD, env=env)
    assert created.returncode == 0, created.stderr.decode()
    node = await start_node(env, tmp_path / "node.log")
    try:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as api:
            admin = await log_in(api, "root@x.org")
            instructor = await make_instructor(api, admin, "teacher@x.org")
            learner = await sign_up(api, "learner@x.org", name="Grace Hopper")
            course = await make_course(api, database_url, instructor, learner)
        page_url = f"{node.url}/live/{course.id}"
        driver = [sys.executable, "-m", "tests.e2e.live_page_driver"]
        driver += [page_url, instructor.email, PASSWORD, str(learner.user_id), "15%"]
        browser_log = tmp_path / "browser.log"
        with browser_log.open("wb") as log:
            browser = await trio.lowlevel.open_process(
                driver, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
        try:
            with trio.fail_after(DEADLINE):
                lines = output_lines(browser.stdout)
                assert await anext(lines, "") == "live", browser_log.read_text()
                async with live_socket(
                    node.url, progress_path(course.id), learner.access_token, device_id="laptop"
                ) as player:
                    await player.send({"type": "subscribe"})
                    await player.expect("snapshot")
                    await player.send({"type": "presence", "content_id": course.video_id})
                    ack = await player.heartbeat(
                        1, content_id=course.video_id, position=90.0, played=[[0, 90]]
                    )
                    assert ack["type"] == "ack"
                    seen = json.loads(await anext(lines, "null"))
                assert await browser.wait() == 0, browser_log.read_text()
        finally:
            browser.kill()
            await browser.wait()
        assert seen == {
            "who": "Grace Hopper",
            "online": "online",
            "watching": "Lenses",
            "position": "1:30",
            "count": "1 online",
            "title": "Live: Optics",
        }
    finally:
        await node.stop()
