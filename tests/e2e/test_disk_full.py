"""A real node whose media volume (a small tmpfs mounted for the test) fills up.

Uploads are refused with 507 Insufficient Storage, `Retry-After` and a JSON error, keeping what
was stored before: a tus upload's offset stays where its bytes are, and it resumes once there is
room. A transcode that runs out of space is retried after a pause (it is the volume's fault, not
the video's), its error names no server path, and nothing half-written is published or left.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from tests.e2e.nodes import SECRET, NodeProcess, node_env, start_node
from tests.lms.http.conftest import Login, log_in, sign_up
from tests.lms.http.test_uploads import create, offset_of, patch, video_content
from tests.polling import eventually
from tests.small_volume import CannotMount, SmallVolume, small_volume
from tests.sql import sql

pytestmark = pytest.mark.e2e

MiB = 1 << 20


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[SmallVolume]:
    """An 8 MiB tmpfs of the test's own: a media volume small enough to fill."""
    try:
        with small_volume(tmp_path / "media") as volume:
            yield volume
    except CannotMount as why:
        pytest.skip(f"no small tmpfs: neither mount (as root) nor unshare works here: {why}")


def fill(volume: Path, *, leave: int = 0) -> Path:
    """Write a file of zeros until the volume refuses more, then give `leave` bytes back;
    return the file (removing it frees the space)."""
    total = os.statvfs(volume)
    # A guard: never fill a real disk, should the small volume not be what is there.
    assert total.f_blocks * total.f_frsize <= 16 * MiB, f"{volume} is not a small volume"
    filler = volume / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(bytes(256 << 10))
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        out.truncate(max(0, out.tell() - leave))
    return filler


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@asynccontextmanager
async def running_node(
    tmp_path: Path, database_url: str, volume: SmallVolume, workers: int
) -> AsyncIterator[tuple[NodeProcess, Path]]:
    """The node, and where this test reaches its media volume."""
    env = node_env(
        tmp_path / "data",
        LMS_DATABASE_URL=database_url,
        LMS_SECRET_KEY=SECRET,
        LMS_MEDIA_DIR=str(volume.path),
        LMS_MEDIA_MIN_FREE_BYTES="0",  # readiness would fail on so small a volume
        LMS_TRANSCODE_WORKERS=str(workers),
    )
    node = await start_node(env, tmp_path / "node.log", launcher=volume.launcher)
    try:
        yield node, volume.seen_from_here(node.process.pid)
    finally:
        with trio.CancelScope(shield=True):
            await node.stop()


async def an_instructor(api: httpx.AsyncClient, database_url: str) -> Login:
    await sign_up(api, "teacher@test.lms")
    await sql(database_url, "UPDATE users SET role = 'instructor'")
    return await log_in(api, "teacher@test.lms")  # a token with the new role


def assert_refused_for_space(response: httpx.Response) -> None:
    assert response.status_code == 507, response.text
    assert response.headers["Retry-After"] == "60"
    assert response.json()["error"]["code"] == "insufficient_storage"


async def test_uploads_get_507_on_a_full_volume_and_a_tus_upload_resumes_once_there_is_room(
    database_url: str, volume: SmallVolume, tmp_path: Path
) -> None:
    data = bytes(range(256)) * (3 * MiB // 256)
    async with (
        running_node(tmp_path, database_url, volume, workers=0) as (node, media),
        httpx.AsyncClient(base_url=node.url, timeout=30) as api,
    ):
        owner = await an_instructor(api, database_url)
        content = await video_content(api, owner)
        created = await create(api, owner, content["id"], len(data))
        url = created.headers["Location"]
        part = media / "uploads" / f"{url.rsplit('/', 1)[1]}.part"
        assert (await patch(api, owner, url, 0, data[:MiB])).status_code == 204

        # Room for part of the next write only: it is cut back whole, not left half-done.
        filler = fill(media, leave=256 << 10)
        assert_refused_for_space(await patch(api, owner, url, MiB, data[MiB:]))
        assert await offset_of(api, owner, url) == MiB
        assert part.read_bytes() == data[:MiB]

        multipart = await api.post(
            f"/api/v1/courses/{content['course_id']}/contents/{content['id']}/video",
            files={"file": ("clip.mp4", data[:MiB], "video/mp4")},
            headers=owner.auth,
        )
        assert_refused_for_space(multipart)
        assert listing(media / "uploads") == [part.name]

        filler.unlink()
        finished = await patch(api, owner, url, MiB, data[MiB:])
        assert finished.status_code == 204, finished.text
        assert int(finished.headers["Upload-Offset"]) == len(data)
        assert (media / "uploads" / part.stem).read_bytes() == data
        jobs = await sql(database_url, "SELECT source FROM jobs")
        assert [j["source"] for j in jobs] == [f"uploads/{part.stem}"]


async def job(database_url: str) -> dict:
    [row] = await sql(database_url, "SELECT state, attempts, error FROM jobs")
    return dict(row)


async def test_a_transcode_that_runs_out_of_space_is_retried_and_its_error_names_no_path(
    database_url: str, volume: SmallVolume, tmp_path: Path, small_clip: Path
) -> None:
    async with (
        running_node(tmp_path, database_url, volume, workers=1) as (node, media),
        httpx.AsyncClient(base_url=node.url, timeout=30) as api,
    ):
        owner = await an_instructor(api, database_url)
        content = await video_content(api, owner)
        (media / "uploads").mkdir()
        shutil.copy(small_clip, media / "uploads" / "clip.mp4")
        filler = fill(media)
        await sql(
            database_url,
            "INSERT INTO jobs (content_id, uploader_id, source, max_attempts) "
            "VALUES ($1, $2, 'uploads/clip.mp4', 3)",
            content["id"],
            owner.user_id,
        )

        failed = await eventually(
            lambda: job(database_url), lambda j: j["attempts"] == 1 and j["error"] is not None
        )
        assert failed["state"] == "queued"  # to be tried again, not failed for good
        assert failed["error"].endswith("no space left on the media volume")
        assert "/" not in failed["error"]  # no server path
        # Nothing of the attempt is published or left on the volume.
        assert listing(media) == ["filler", "uploads", "work"]
        assert listing(media / "work") == []

        filler.unlink()
        done = await eventually(lambda: job(database_url), lambda j: j["state"] == "done")
        assert done["attempts"] == 2
        assert listing(media / "work") == []
        assert listing(media / "videos") == [str(content["id"])]
