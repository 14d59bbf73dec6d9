"""The video pipeline end to end, with real `lms serve` and `lms worker` processes: a resumed tus
upload becomes renditions of the right size; a worker killed mid-job and a node killed mid-upload
and mid-transcode lose nothing."""

from __future__ import annotations

import signal
from pathlib import Path

import av
import httpx
import pytest
import trio
from tusclient.client import TusClient

from media.synthetic import write_clip
from tests.e2e.admins import Admin, create_admin, signed_in
from tests.e2e.nodes import SECRET, STOP_DEADLINE, NodeProcess, node_env, start_node, start_worker

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lecture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400p source: the ladder gives it 400p and 360p."""
    path = tmp_path_factory.mktemp("clips") / "lecture.mp4"
    return write_clip(path, width=720, height=400, seconds=2.0)


@pytest.fixture(scope="module")
def long_lecture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough (a couple of seconds of transcoding) to kill what runs it halfway."""
    path = tmp_path_factory.mktemp("clips") / "long.mp4"
    return write_clip(path, width=640, height=360, seconds=20.0, fps=15)


@pytest.fixture
def env(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    return node_env(
        tmp_path / "data",
        LMS_DATABASE_URL=database_url,
        LMS_REDIS_URL=redis_url,
        LMS_SECRET_KEY=SECRET,
        LMS_JOB_LEASE_SECONDS="2",
        LMS_TRANSCODE_WORKERS="1",
    )


def tus_upload(node: str, admin: Admin, path: Path, content_id: int, **options: object) -> str:
    """tuspy, a stock client: upload (or, given `url=`, resume) and return the upload URL."""
    uploader = TusClient(f"{node}/api/v1/uploads", headers=admin.auth).uploader(
        file_path=str(path),
        chunk_size=1 << 20,
        metadata={"content_id": str(content_id), "filename": path.name},
        retries=0,
        url=options.get("url"),
    )
    uploader.upload(stop_at=options.get("stop_at"))
    return uploader.url


async def tus_offset(admin: Admin, upload_url: str) -> int:
    response = await admin.client.head(upload_url, headers={"Tus-Resumable": "1.0.0", **admin.auth})
    return int(response.headers["Upload-Offset"])


async def upload_half(node: str, admin: Admin, path: Path, content_id: int) -> tuple[str, int]:
    """Upload the first half of `path` with tuspy and stop, as a dropped connection would;
    return the upload URL and how many bytes the server holds."""
    half = (await trio.Path(path).stat()).st_size // 2
    upload_url = await trio.to_thread.run_sync(
        lambda: tus_upload(node, admin, path, content_id, stop_at=half)
    )
    return upload_url, half


def probe(path: Path) -> tuple[str, int, int, str | None]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        return (
            video.codec_context.name,
            video.codec_context.width,
            video.codec_context.height,
            None if audio is None else audio.codec_context.name,
        )


async def test_a_tus_upload_resumed_by_a_new_client_becomes_renditions_of_the_right_size(
    env: dict[str, str], tmp_path: Path, lecture: Path
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(create_admin, env)
        node = await start_node(env, tmp_path / "node.log")
    async with signed_in(node.url) as admin:
        content_id = await admin.video_content()
        upload_url, half = await upload_half(node.url, admin, lecture, content_id)
        assert await tus_offset(admin, upload_url) == half
        await trio.to_thread.run_sync(
            lambda: tus_upload(node.url, admin, lecture, content_id, url=upload_url)
        )
        manifest = await admin.ready(content_id)
        sizes = {r["label"]: (r["width"], r["height"]) for r in manifest["renditions"]}
        assert sizes == {"400p": (720, 400), "360p": (648, 360)}
        for rendition in manifest["renditions"]:
            mp4 = await admin.client.get(rendition["url"], headers=admin.auth)
            assert mp4.status_code == 200
            path = tmp_path / f"{rendition['label']}.mp4"
            await trio.Path(path).write_bytes(mp4.content)
            assert probe(path) == ("h264", rendition["width"], rendition["height"], "aac")
        master = await admin.client.get(manifest["hls_master"], headers=admin.auth)
        assert master.text.count("#EXT-X-STREAM-INF") == 2
    assert await node.stop() == 0


async def test_a_worker_killed_mid_job_leaves_its_job_to_another_worker(
    env: dict[str, str], tmp_path: Path, long_lecture: Path
) -> None:
    # This node only serves; two `lms worker` processes transcode.
    started: dict[str, NodeProcess | trio.Process] = {}
    async with trio.open_nursery() as nursery:

        async def start(name: str) -> None:
            if name == "node":
                serving = env | {"LMS_TRANSCODE_WORKERS": "0"}
                started[name] = await start_node(serving, tmp_path / "node.log")
            else:
                worker_env = env | {"LMS_NODE_ID": name}
                started[name] = await start_worker(worker_env, tmp_path / f"{name}.log")

        for name in ("node", "worker-a", "worker-b"):
            nursery.start_soon(start, name)
        nursery.start_soon(create_admin, env)
    node = started.pop("node")
    assert isinstance(node, NodeProcess)
    async with signed_in(node.url) as admin:
        content_id = await admin.video_content()
        await trio.to_thread.run_sync(lambda: tus_upload(node.url, admin, long_lecture, content_id))
        job = await admin.running(content_id)
        victim = job["worker_id"].split("/")[0]
        started[victim].send_signal(signal.SIGKILL)
        [survivor] = set(started) - {victim}

        await admin.ready(content_id)
        job = await admin.job_of(content_id)
        assert (job["state"], job["attempts"]) == ("done", 2)
        assert job["worker_id"].startswith(f"{survivor}/")
        workers = (await admin.client.get("/api/v1/jobs/workers", headers=admin.auth)).json()
        assert any(w["node_id"] == survivor and w["alive"] for w in workers)
    for name, process in started.items():
        assert isinstance(process, trio.Process)
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(STOP_DEADLINE):
            assert await process.wait() == (-signal.SIGKILL if name == victim else 0)
    assert await node.stop() == 0


async def test_a_node_killed_mid_upload_and_mid_transcode_loses_nothing(
    env: dict[str, str], tmp_path: Path, long_lecture: Path
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(create_admin, env)
        node = await start_node(env, tmp_path / "node-1.log")
    async with signed_in(node.url) as admin:
        content_id = await admin.video_content()
        upload_url, half = await upload_half(node.url, admin, long_lecture, content_id)
        await node.stop(signal.SIGKILL)

        # The upload survived the crash: a new client on the restarted node resumes it.
        node = await start_node(env, tmp_path / "node-2.log")
        await admin.reconnect(node.url)
        upload_url = node.url + httpx.URL(upload_url).path
        assert await tus_offset(admin, upload_url) == half
        await trio.to_thread.run_sync(
            lambda: tus_upload(node.url, admin, long_lecture, content_id, url=upload_url)
        )
        job = await admin.running(content_id)
        assert job["attempts"] == 1
        await node.stop(signal.SIGKILL)

        # The job survived too: the next node takes it again once the dead one's lease runs out.
        node = await start_node(env, tmp_path / "node-3.log")
        await admin.reconnect(node.url)
        manifest = await admin.ready(content_id)
        assert manifest["duration"] == pytest.approx(20.0, abs=0.5)
        job = await admin.job_of(content_id)
        assert (job["state"], job["attempts"]) == ("done", 2)
    assert await node.stop() == 0
