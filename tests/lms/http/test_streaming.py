"""Playback over real HTTP: a clip uploaded to a real node is transcoded by its pool, then the
manifest and every file it points to are served, with byte ranges and access checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest
import trio

from lms.config import Settings
from lms.jobs.videos import HLS_DIR, HLS_MASTER
from tests.lms.http.conftest import Login, sign_up
from tests.polling import eventually


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, transcode_workers=1)


@dataclasses.dataclass(frozen=True)
class Published:
    course_id: int
    content_id: int
    manifest: dict

    @property
    def base(self) -> str:
        return f"/api/v1/stream/video/{self.content_id}"


async def publish_clip(api: httpx.AsyncClient, owner: Login, clip: Path) -> Published:
    """Upload `clip` to a new video content and wait, as a player would, until it is ready."""
    course = (await api.post("/api/v1/courses", json={"title": "C"}, headers=owner.auth)).json()
    content = (
        await api.post(
            f"/api/v1/courses/{course['id']}/contents",
            json={"title": "V", "kind": "video"},
            headers=owner.auth,
        )
    ).json()
    uploaded = await api.post(
        f"/api/v1/courses/{course['id']}/contents/{content['id']}/video",
        files={"file": ("clip.mp4", await trio.Path(clip).read_bytes(), "video/mp4")},
        headers=owner.auth,
    )
    assert uploaded.status_code == 202, uploaded.text

    async def manifest() -> dict:
        response = await api.get(
            f"/api/v1/stream/video/{content['id']}/manifest", headers=owner.auth
        )
        assert response.status_code == 200, response.text
        return response.json()

    ready = await eventually(manifest, lambda m: m["status"] in ("ready", "failed"))
    assert ready["status"] == "ready", ready
    return Published(course["id"], content["id"], ready)


def test_the_players_layout_matches_what_the_worker_writes() -> None:
    from media import transcode

    assert (HLS_DIR, HLS_MASTER) == (transcode.HLS_DIR, transcode.MASTER)


async def test_the_manifest_lists_renditions_and_files_of_a_transcoded_video(
    api: httpx.AsyncClient, admin: Login, small_clip: Path
) -> None:
    video = await publish_clip(api, admin, small_clip)
    manifest = video.manifest
    assert manifest["progress"] == 1.0
    assert manifest["duration"] == pytest.approx(1.0, abs=0.1)
    [rendition] = manifest["renditions"]
    assert (rendition["width"], rendition["height"]) == (160, 90)
    # Signed URLs of the published file set (tests/lms/http/test_media_app.py opens them).
    prefix = manifest["hls_master"].removesuffix("/hls/master.m3u8")
    assert prefix.startswith("/media/")
    assert f"/videos/{video.content_id}/" in prefix
    assert rendition["url"] == f"{prefix}/{rendition['label']}.mp4"
    assert rendition["hls"].startswith(f"{prefix}/hls/")
    assert manifest["thumbnail"] == f"{prefix}/thumbnail.jpg"
    assert manifest["storyboard"] == f"{prefix}/storyboard.vtt"
    assert manifest["preview"] == f"{prefix}/preview.mp4"


async def test_an_mp4_is_served_with_correct_byte_ranges(
    api: httpx.AsyncClient, admin: Login, small_clip: Path
) -> None:
    video = await publish_clip(api, admin, small_clip)
    url = f"{video.base}?quality={video.manifest['renditions'][0]['label']}"
    auth = admin.auth

    whole = await api.get(url, headers=auth)
    assert whole.status_code == 200
    assert whole.headers["Content-Type"] == "video/mp4"
    assert whole.headers["Accept-Ranges"] == "bytes"
    body = whole.content
    size = len(body)
    assert int(whole.headers["Content-Length"]) == size > 1000
    assert body[4:8] == b"ftyp"

    def ranged(spec: str, **extra: str) -> dict[str, str]:
        return {**auth, "Range": spec, **extra}

    first = await api.get(url, headers=ranged("bytes=0-99"))
    assert (first.status_code, first.content) == (206, body[:100])
    assert first.headers["Content-Range"] == f"bytes 0-99/{size}"
    suffix = await api.get(url, headers=ranged("bytes=-500"))
    assert (suffix.status_code, suffix.content) == (206, body[-500:])
    assert suffix.headers["Content-Range"] == f"bytes {size - 500}-{size - 1}/{size}"
    open_ended = await api.get(url, headers=ranged("bytes=1000-"))
    assert (open_ended.status_code, open_ended.content) == (206, body[1000:])
    past_end = await api.get(url, headers=ranged(f"bytes=10-{size + 100}"))
    assert (past_end.status_code, past_end.content) == (206, body[10:])

    beyond = await api.get(url, headers=ranged(f"bytes={size}-"))
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"
    assert beyond.json()["error"]["code"] == "range_not_satisfiable"

    for malformed in ("bytes=5-2", "bytes=abc", "bytes=-", "bytes=0-9999999999999999999999"):
        refused = await api.get(url, headers=ranged(malformed))
        assert refused.status_code == 416, malformed
        assert refused.headers["Content-Range"] == f"bytes */{size}"
    several = await api.get(url, headers=ranged("bytes=0-1,5-9"))
    assert several.status_code == 206
    boundary = several.headers["Content-Type"].removeprefix("multipart/byteranges; boundary=")

    def part(first: int, last: int) -> bytes:
        head = f"\r\n--{boundary}\r\nContent-Type: video/mp4\r\n"
        head += f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n"
        return head.encode() + body[first : last + 1]

    ending = f"\r\n--{boundary}--\r\n".encode()
    assert several.content == part(0, 1) + part(5, 9) + ending
    # A file changed since the client's copy (If-Range) is sent whole.
    stale = await api.get(url, headers=ranged("bytes=0-9", **{"If-Range": '"old"'}))
    assert (stale.status_code, stale.content) == (200, body)
    fresh = await api.get(url, headers=ranged("bytes=0-9", **{"If-Range": whole.headers["ETag"]}))
    assert (fresh.status_code, fresh.content) == (206, body[:10])

    head = await api.head(url, headers=ranged("bytes=0-9"))
    assert (head.status_code, head.headers["Content-Length"], head.content) == (206, "10", b"")
    unchanged = await api.get(url, headers={**auth, "If-None-Match": whole.headers["ETag"]})
    assert unchanged.status_code == 304
    missing = await api.get(f"{video.base}?quality=4320p", headers=auth)
    assert missing.status_code == 404


async def test_the_hls_master_and_everything_it_references_are_served(
    api: httpx.AsyncClient, admin: Login, small_clip: Path
) -> None:
    video = await publish_clip(api, admin, small_clip)
    master_url = f"{video.base}/hls/master.m3u8"
    master = await api.get(master_url, headers=admin.auth)
    assert master.status_code == 200
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    playlists = [line for line in master.text.splitlines() if line and not line.startswith("#")]
    assert playlists
    for playlist in playlists:
        playlist_url = master_url.rsplit("/", 1)[0] + "/" + playlist
        media = await api.get(playlist_url, headers=admin.auth)
        assert media.status_code == 200
        assert "#EXT-X-ENDLIST" in media.text
        names = [line for line in media.text.splitlines() if line and not line.startswith("#")]
        names += [
            line.split('URI="')[1].split('"')[0]
            for line in media.text.splitlines()
            if "URI=" in line
        ]
        for name in names:
            segment = await api.get(playlist_url.rsplit("/", 1)[0] + "/" + name, headers=admin.auth)
            assert segment.status_code == 200, name
            assert len(segment.content) > 0
    thumbnail = await api.get(f"{video.base}/thumbnail", headers=admin.auth)
    assert thumbnail.headers["Content-Type"] == "image/jpeg"
    assert thumbnail.content[:2] == b"\xff\xd8"
    storyboard = f"{video.base}/storyboard/storyboard.vtt"
    vtt = await api.get(storyboard, headers=admin.auth)
    assert vtt.text.startswith("WEBVTT")
    image = vtt.text.split("\n\n")[1].splitlines()[1].split("#")[0]
    sprite = await api.get(storyboard.rsplit("/", 1)[0] + "/" + image, headers=admin.auth)
    assert sprite.status_code == 200
    assert sprite.headers["Content-Type"] == "image/jpeg"
    preview = await api.get(f"{video.base}/preview", headers=admin.auth)
    assert preview.content[4:8] == b"ftyp"


async def test_only_enrolled_learners_the_owner_and_admins_may_watch(
    api: httpx.AsyncClient, instructor: Login, admin: Login, learner: Login, small_clip: Path
) -> None:
    video = await publish_clip(api, instructor, small_clip)
    paths = [
        video.base + "/manifest",
        f"{video.base}?quality=auto",
        video.base + "/hls/master.m3u8",
        video.base + "/thumbnail",
    ]
    for path in paths:
        assert (await api.get(path, headers=learner.auth)).status_code == 403, path
        assert (await api.get(path)).status_code == 401, path
        assert (await api.get(path, headers=admin.auth)).status_code == 200, path
    enrolled = await api.post(f"/api/v1/courses/{video.course_id}/enroll", headers=learner.auth)
    assert enrolled.status_code == 201
    for path in paths:
        assert (await api.get(path, headers=learner.auth)).status_code == 200, path
    stranger = await sign_up(api, "stranger@test.lms")
    assert (await api.get(paths[1], headers=stranger.auth)).status_code == 403


async def test_paths_outside_the_video_are_never_served(
    api: httpx.AsyncClient, admin: Login, small_clip: Path, settings: Settings
) -> None:
    video = await publish_clip(api, admin, small_clip)
    (settings.media_dir / "secret.txt").write_text("not for players")
    for path in (
        "/hls/../../../secret.txt",
        "/hls/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/hls/..%2f..%2f..%2fsecret.txt",
        "/hls/.hidden",
        "/storyboard/..%2f..%2fsecret.txt",
        "/storyboard/90p.mp4",
    ):
        response = await api.get(video.base + path, headers=admin.auth)
        assert response.status_code == 404, path
        assert b"not for players" not in response.content


async def test_a_video_content_without_an_upload_has_no_manifest(
    api: httpx.AsyncClient, admin: Login
) -> None:
    course = (await api.post("/api/v1/courses", json={"title": "C"}, headers=admin.auth)).json()
    text = await api.post(
        f"/api/v1/courses/{course['id']}/contents",
        json={"title": "T", "kind": "text"},
        headers=admin.auth,
    )
    video = await api.post(
        f"/api/v1/courses/{course['id']}/contents",
        json={"title": "V", "kind": "video"},
        headers=admin.auth,
    )
    for content in (text.json(), video.json()):
        manifest = await api.get(
            f"/api/v1/stream/video/{content['id']}/manifest", headers=admin.auth
        )
        assert manifest.status_code == 404
        assert manifest.json()["error"]["code"] == "not_found"


async def test_admins_see_the_nodes_transcoder_slots(
    api: httpx.AsyncClient, admin: Login, learner: Login, settings: Settings
) -> None:
    workers = await api.get("/api/v1/jobs/workers", headers=admin.auth)
    assert workers.status_code == 200
    [slot] = workers.json()
    assert (slot["node_id"], slot["kind"], slot["alive"]) == (settings.node_id, "node", True)
    assert (await api.get("/api/v1/jobs/workers", headers=learner.auth)).status_code == 403


async def test_an_hls_name_longer_than_the_file_system_allows_is_a_404_saying_so(
    api: httpx.AsyncClient, admin: Login, small_clip: Path
) -> None:
    video = await publish_clip(api, admin, small_clip)
    for path in ("a" * 256, "é" * 128, "/".join(["a" * 200] * 30)):
        response = await api.get(f"{video.base}/hls/{path}", headers=admin.auth)
        assert response.status_code == 404, path
        assert "at most 255 bytes" in response.json()["error"]["message"]
    # The longest name a file system allows is asked for like any other, and is not there.
    missing = await api.get(f"{video.base}/hls/{'a' * 255}", headers=admin.auth)
    assert missing.status_code == 404


async def test_quality_auto_is_the_best_rendition(
    api: httpx.AsyncClient, admin: Login, small_clip: Path
) -> None:
    video = await publish_clip(api, admin, small_clip)
    [rendition] = video.manifest["renditions"]
    best = await api.get(f"{video.base}?quality=auto", headers=admin.auth)
    named = await api.get(f"{video.base}?quality={rendition['label']}", headers=admin.auth)
    assert best.status_code == 200
    assert best.content == named.content
    assert len(best.content) == rendition["size"]


class TestBehindNginx:
    """LMS_ACCEL_REDIRECT set: the node checks access and nginx sends the file."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, accel_redirect="/_media/")

    async def test_a_bearer_download_is_handed_to_nginx_after_the_access_check(
        self, api: httpx.AsyncClient, admin: Login, learner: Login, small_clip: Path
    ) -> None:
        video = await publish_clip(api, admin, small_clip)
        [rendition] = video.manifest["renditions"]
        # The file set the signed URL names: /media/<kid>/<sig>/<expires>/<fileset>/<file>.
        fileset_and_file = rendition["url"].split("/", 5)[5]
        download = await api.get(f"{video.base}?quality=auto", headers=admin.auth)
        assert (download.status_code, download.content) == (200, b"")
        assert download.headers["X-Accel-Redirect"] == f"/_media/{fileset_and_file}"
        assert download.headers["Content-Type"] == "video/mp4"
        assert download.headers["Cache-Control"] == "private, no-cache"
        master = await api.get(f"{video.base}/hls/master.m3u8", headers=admin.auth)
        assert master.headers["X-Accel-Redirect"].endswith("/hls/master.m3u8")
        assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        refused = await api.get(f"{video.base}?quality=auto", headers=learner.auth)
        assert refused.status_code == 403
        assert "X-Accel-Redirect" not in refused.headers
        missing = await api.get(f"{video.base}/hls/nothing.m4s", headers=admin.auth)
        assert missing.status_code == 404
        assert "X-Accel-Redirect" not in missing.headers
