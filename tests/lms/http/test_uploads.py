"""Uploads over real HTTP: tus 1.0 with a stock client (tuspy), and multipart for small files."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import httpx
import pytest
import trio
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError

from lms.config import Settings
from tests.lms.http.conftest import Login, make_instructor
from tests.polling import eventually

MAX_UPLOAD = 4 << 20
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No transcoder here: the jobs stay queued, so what the upload made is there to see.
    return dataclasses.replace(
        settings, transcode_workers=0, max_upload_bytes=MAX_UPLOAD, max_concurrent_uploads=2
    )


async def video_content(api: httpx.AsyncClient, owner: Login, kind: str = "video") -> dict:
    course = await api.post("/api/v1/courses", json={"title": "Optics"}, headers=owner.auth)
    content = await api.post(
        f"/api/v1/courses/{course.json()['id']}/contents",
        json={"title": "Lenses", "kind": kind},
        headers=owner.auth,
    )
    assert content.status_code == 201, content.text
    return content.json()


def metadata(**values: object) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in values.items())


async def create(
    api: httpx.AsyncClient, who: Login, content_id: int, length: int, **headers: str
) -> httpx.Response:
    return await api.post(
        "/api/v1/uploads",
        headers={
            **TUS,
            **who.auth,
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(content_id=content_id, filename="lecture.mp4"),
            **headers,
        },
    )


async def patch(
    api: httpx.AsyncClient, who: Login, url: str, offset: int, data: bytes
) -> httpx.Response:
    return await api.patch(
        url,
        content=data,
        headers={
            **TUS,
            **who.auth,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )


async def offset_of(api: httpx.AsyncClient, who: Login, url: str) -> int:
    response = await api.head(url, headers={**TUS, **who.auth})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return int(response.headers["Upload-Offset"])


async def jobs_of(api: httpx.AsyncClient, who: Login) -> list[dict]:
    response = await api.get("/api/v1/jobs", headers=who.auth)
    assert response.status_code == 200, response.text
    return response.json()


def upload_with_tuspy(
    node: str, who: Login, path: Path, content_id: int, *, stop_at: int | None = None, url=None
) -> str:
    """Upload (or resume, given `url`) with tuspy, the way a Python client would; return the
    upload's URL."""
    client = TusClient(f"{node}/api/v1/uploads", headers=who.auth)
    uploader = client.uploader(
        file_path=str(path),
        url=url,
        chunk_size=256 * 1024,
        metadata={"content_id": str(content_id), "filename": path.name},
        retries=0,
    )
    uploader.upload(stop_at=stop_at)
    return uploader.url


def sources(settings: Settings) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (settings.media_dir / "uploads").iterdir()}


async def test_options_say_what_the_server_supports(api: httpx.AsyncClient) -> None:
    response = await api.options("/api/v1/uploads")
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) >= {"creation", "termination"}
    assert response.headers["Tus-Max-Size"] == str(MAX_UPLOAD)


async def test_a_stock_tus_client_uploads_a_video_and_its_transcode_is_queued(
    node: str, api: httpx.AsyncClient, admin: Login, settings: Settings, tmp_path: Path
) -> None:
    content = await video_content(api, admin)
    data = bytes(range(256)) * 4000  # ~1 MB: several PATCHes of 256 KiB
    path = tmp_path / "lecture.mp4"
    path.write_bytes(data)
    url = await trio.to_thread.run_sync(upload_with_tuspy, node, admin, path, content["id"])
    assert await offset_of(api, admin, url) == len(data)
    [job] = await jobs_of(api, admin)
    assert (job["content_id"], job["status"], job["uploader_id"]) == (
        content["id"],
        "queued",
        admin.user_id,
    )
    upload_id = url.rsplit("/", 1)[1]
    assert sources(settings) == {upload_id: data}  # the finished file, no `.part` left


async def test_an_interrupted_upload_resumes_where_the_server_stands_from_a_new_client(
    node: str, api: httpx.AsyncClient, admin: Login, settings: Settings, tmp_path: Path
) -> None:
    content = await video_content(api, admin)
    data = b"0123456789abcdef" * 50_000
    path = tmp_path / "talk.mp4"
    path.write_bytes(data)
    url = await trio.to_thread.run_sync(
        lambda: upload_with_tuspy(node, admin, path, content["id"], stop_at=300_000)
    )
    assert await offset_of(api, admin, url) == 300_000
    assert await jobs_of(api, admin) == []
    # A different client, knowing only the URL, asks where to resume and finishes.
    await trio.to_thread.run_sync(
        lambda: upload_with_tuspy(node, admin, path, content["id"], url=url)
    )
    assert await offset_of(api, admin, url) == len(data)
    assert sources(settings) == {url.rsplit("/", 1)[1]: data}
    assert len(await jobs_of(api, admin)) == 1


async def test_a_patch_cut_off_mid_body_keeps_the_bytes_that_arrived(
    node: str, api: httpx.AsyncClient, admin: Login
) -> None:
    content = await video_content(api, admin)
    created = await create(api, admin, content["id"], 1_000_000)
    url = created.headers["Location"]
    host, port = node.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    head = (
        f"PATCH {url} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\n"
        f"Authorization: Bearer {admin.access_token}\r\n"
        "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        "Content-Length: 1000000\r\n\r\n"
    )
    await stream.send_all(head.encode() + b"x" * 300_000)
    # The client's side of the server socket closes before the body is complete.
    await stream.aclose()
    await eventually(lambda: offset_of(api, admin, url), lambda offset: offset == 300_000)
    rest = await patch(api, admin, url, 300_000, b"y" * 700_000)
    assert rest.status_code == 204
    assert rest.headers["Upload-Offset"] == "1000000"


async def test_protocol_errors_get_the_right_status_and_a_json_error(
    api: httpx.AsyncClient, admin: Login
) -> None:
    content = await video_content(api, admin)
    url = (await create(api, admin, content["id"], 10)).headers["Location"]

    wrong_offset = await patch(api, admin, url, 3, b"abc")
    assert wrong_offset.status_code == 409
    assert wrong_offset.json()["error"]["code"] == "offset_mismatch"
    assert wrong_offset.headers["Tus-Resumable"] == "1.0.0"

    wrong_type = await api.patch(
        url, content=b"abc", headers={**TUS, **admin.auth, "Upload-Offset": "0"}
    )
    assert wrong_type.status_code == 415

    old_version = await api.head(url, headers={"Tus-Resumable": "0.2.2", **admin.auth})
    assert old_version.status_code == 412
    assert old_version.headers["Tus-Version"] == "1.0.0"

    too_long = await patch(api, admin, url, 0, b"x" * 11)
    assert too_long.status_code == 413
    assert too_long.json()["error"]["code"] == "too_large"

    no_length = await api.post(
        "/api/v1/uploads",
        headers={**TUS, **admin.auth, "Upload-Metadata": metadata(content_id=1)},
    )
    assert no_length.status_code == 400
    bad_metadata = await create(api, admin, content["id"], 10, **{"Upload-Metadata": "x !"})
    assert bad_metadata.status_code == 422
    assert (await offset_of(api, admin, url)) == 0  # nothing of that landed


async def test_only_the_courses_instructor_or_an_admin_uploads_and_only_to_a_video(
    api: httpx.AsyncClient, instructor: Login, admin: Login, learner: Login
) -> None:
    content = await video_content(api, instructor)
    rival = await make_instructor(api, admin, "rival@test.lms")
    assert (await create(api, learner, content["id"], 10)).status_code == 403
    assert (await create(api, rival, content["id"], 10)).status_code == 403
    assert (await create(api, admin, content["id"], 10)).status_code == 201
    text = await video_content(api, instructor, kind="text")
    not_video = await create(api, instructor, text["id"], 10)
    assert not_video.status_code == 422
    assert "not a video" in not_video.json()["error"]["message"]
    assert (await create(api, instructor, 999_999, 10)).status_code == 404
    anonymous = await api.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "10"})
    assert anonymous.status_code == 401
    # Someone else's upload is not theirs to continue.
    url = (await create(api, instructor, content["id"], 10)).headers["Location"]
    assert (await patch(api, rival, url, 0, b"0123456789")).status_code == 403


async def test_the_size_and_unfinished_upload_limits_are_enforced(
    api: httpx.AsyncClient, admin: Login
) -> None:
    content = await video_content(api, admin)
    too_big = await create(api, admin, content["id"], MAX_UPLOAD + 1)
    assert too_big.status_code == 413
    assert str(MAX_UPLOAD) in too_big.json()["error"]["message"]
    first = await create(api, admin, content["id"], 10)
    await create(api, admin, content["id"], 10)
    third = await create(api, admin, content["id"], 10)
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "too_many_requests"
    # Finishing or terminating one makes room.
    gone = await api.delete(first.headers["Location"], headers={**TUS, **admin.auth})
    assert gone.status_code == 204
    assert (await create(api, admin, content["id"], 10)).status_code == 201


async def test_terminating_an_upload_deletes_it_and_its_bytes(
    api: httpx.AsyncClient, admin: Login, settings: Settings
) -> None:
    content = await video_content(api, admin)
    url = (await create(api, admin, content["id"], 10)).headers["Location"]
    assert (await patch(api, admin, url, 0, b"01234")).status_code == 204
    assert (await api.delete(url, headers={**TUS, **admin.auth})).status_code == 204
    assert (await api.head(url, headers={**TUS, **admin.auth})).status_code == 404
    assert sources(settings) == {}
    done = (await create(api, admin, content["id"], 3)).headers["Location"]
    await patch(api, admin, done, 0, b"abc")
    finished = await api.delete(done, headers={**TUS, **admin.auth})
    assert finished.status_code == 409  # a job's source stays


async def test_a_multipart_upload_queues_a_transcode(
    api: httpx.AsyncClient, admin: Login, settings: Settings
) -> None:
    content = await video_content(api, admin)
    path = f"/api/v1/courses/{content['course_id']}/contents/{content['id']}/video"
    data = b"\x00video" * 20_000
    response = await api.post(
        path,
        files={"file": ("clip.mp4", data, "video/mp4")},
        data={"note": "ignored"},
        headers=admin.auth,
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["content_id"], job["status"]) == (content["id"], "queued")
    assert list(sources(settings).values()) == [data]

    not_multipart = await api.post(path, content=b"raw", headers=admin.auth)
    assert not_multipart.status_code == 422
    no_file = await api.post(path, files={"other": ("a", b"b")}, headers=admin.auth)
    assert no_file.status_code == 422
    too_big = await api.post(
        path, files={"file": ("big.mp4", b"x" * (MAX_UPLOAD + 1))}, headers=admin.auth
    )
    assert too_big.status_code == 413
    wrong_course = await api.post(
        f"/api/v1/courses/{content['course_id'] + 1}/contents/{content['id']}/video",
        files={"file": ("clip.mp4", data)},
        headers=admin.auth,
    )
    assert wrong_course.status_code == 404
    assert len(sources(settings)) == 1  # the refused ones left nothing behind


async def test_one_keep_alive_connection_survives_refused_uploads(
    node: str, admin: Login, api: httpx.AsyncClient
) -> None:
    content = await video_content(api, admin)
    url = (await create(api, admin, content["id"], 100_000)).headers["Location"]
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=node, limits=limits, timeout=10) as one:
        for _ in range(3):
            refused = await patch(one, admin, url, 5, b"z" * 100_000)
            assert refused.status_code == 409
            assert await offset_of(one, admin, url) == 0


async def test_tuspy_reports_a_refused_upload(
    node: str, api: httpx.AsyncClient, learner: Login, admin: Login, tmp_path: Path
) -> None:
    content = await video_content(api, admin)
    path = tmp_path / "x.mp4"
    path.write_bytes(b"abc")
    with pytest.raises(TusCommunicationError) as refused:
        await trio.to_thread.run_sync(upload_with_tuspy, node, learner, path, content["id"])
    assert refused.value.status_code == 403
