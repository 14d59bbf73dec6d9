"""The transcode jobs page in headless Chromium against a real node that transcodes: an admin who
keeps the page open sees their uploads' jobs move on it, carried by the page's live socket alone
(the driver stops the page's clock, so its poll never fires)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from media.synthetic import write_clip
from tests.e2e.admins import ADMIN, Admin, create_admin, signed_in
from tests.e2e.nodes import NodeProcess, database_node_env, output_lines, start_node
from tests.media.clips import write_text

pytestmark = pytest.mark.e2e

DEADLINE = 60.0


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small enough to be transcoded in a second or two."""
    return write_clip(tmp_path_factory.mktemp("clips") / "lecture.mp4", width=320, height=240)


@pytest.fixture
async def node(database_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[NodeProcess]:
    env = database_node_env(
        tmp_path, database_url, LMS_REDIS_URL=redis_url, LMS_TRANSCODE_WORKERS="1"
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(create_admin, env)
        node = await start_node(env, tmp_path / "node.log")
    try:
        yield node
    finally:
        assert await node.stop() == 0, node.log()


class JobsPage:
    """The page open in the driver process: ask it for a job's row once it shows a status."""

    def __init__(self, browser: trio.Process, log: Path) -> None:
        assert browser.stdin is not None
        self._stdin = browser.stdin
        self._lines = output_lines(browser.stdout)
        self.log = log

    async def line(self) -> str:
        try:
            return await anext(self._lines)
        except StopAsyncIteration:
            raise AssertionError(f"the browser driver quit:\n{await self.errors()}") from None

    async def errors(self) -> str:
        return await trio.Path(self.log).read_text()

    async def row(self, job_id: int, status: str) -> dict[str, str | bool]:
        """What the job's row says once its status is `status` (the driver waits for it)."""
        await self._stdin.send_all(f"{job_id} {status}\n".encode())
        return json.loads(await self.line())


@asynccontextmanager
async def jobs_page(node: NodeProcess, log: Path) -> AsyncIterator[JobsPage]:
    """The admin signed in on `/admin/jobs`, its live socket up."""
    driver = [sys.executable, "-m", "tests.e2e.admin_jobs_page_driver", f"{node.url}/admin/jobs"]
    with log.open("wb") as stderr:
        browser = await trio.lowlevel.open_process(
            [*driver, *ADMIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
    try:
        page = JobsPage(browser, log)
        assert await page.line() == "live"
        yield page
        assert browser.stdin is not None
        await browser.stdin.aclose()
        assert await browser.wait() == 0, await page.errors()
    finally:
        browser.kill()
        await browser.wait()


async def upload(admin: Admin, path: Path) -> int:
    """Upload `path` as a new lecture's video; its transcode job's id."""
    api, auth = admin.client, admin.auth
    course = (await api.post("/api/v1/courses", json={"title": "Optics"}, headers=auth)).json()
    contents = f"/api/v1/courses/{course['id']}/contents"
    content = await api.post(contents, json={"title": "Lenses", "kind": "video"}, headers=auth)
    response = await api.post(
        f"{contents}/{content.json()['id']}/video",
        files={"file": (path.name, await trio.Path(path).read_bytes())},
        headers=auth,
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def test_an_admin_sees_a_fresh_upload_become_ready_without_reloading_the_jobs_page(
    node: NodeProcess, tmp_path: Path, lecture: Path
) -> None:
    with trio.fail_after(DEADLINE):
        async with jobs_page(node, tmp_path / "browser.log") as page, signed_in(node.url) as admin:
            job_id = await upload(admin, lecture)
            ready = await page.row(job_id, "ready")
    assert ready.pop("worker")  # the slot that ran it
    assert ready == {
        "status": "ready",
        "progress": "100%",
        "eta": "",
        "attempts": "1 / 3",
        "error": "",
        "same_page": True,
    }


async def test_an_admin_sees_a_broken_upload_fail_with_its_reason_on_the_jobs_page(
    node: NodeProcess, tmp_path: Path
) -> None:
    notes = write_text(tmp_path / "lecture.mp4")
    with trio.fail_after(DEADLINE):
        async with jobs_page(node, tmp_path / "browser.log") as page, signed_in(node.url) as admin:
            job_id = await upload(admin, notes)
            failed = await page.row(job_id, "failed")
    assert failed["error"] == "not a video file", failed
    assert (failed["attempts"], failed["same_page"]) == ("1 / 3", True)
