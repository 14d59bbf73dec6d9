"""The node's signed media path against a real node: the manifest's signed URLs open without a
token, with ranges and the caching of their file set; a bad, foreign or expired signature does
not; and none of it reads the database."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from lms.config import Settings
from lms.domain.media_urls import MediaUrls, derived_key
from tests.lms.http.conftest import SECRET, Login
from tests.lms.http.test_streaming import publish_clip
from tests.services import RunningPostgres, own_postgres

IMMUTABLE = "public, max-age=31536000, immutable"
# The key a node signs with when LMS_MEDIA_KEYS is unset: derived from its secret key.
URLS = MediaUrls((derived_key(SECRET),), ttl=3600)
BODY = bytes(range(256)) * 1000  # 256,000 bytes: several chunks of the sender


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, transcode_workers=1)


def place(media_dir: Path, fileset: str, files: dict[str, bytes]) -> None:
    """Files on the media volume, as a worker leaves them."""
    for name, data in files.items():
        path = media_dir / fileset / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def signed(fileset: str, file: str, expires: int | None = None) -> str:
    return URLS.fileset(fileset, expires or URLS.expiry(time.time())) + "/" + file


def published() -> str:
    return f"videos/{uuid.uuid4().int % 10**6}/{uuid.uuid4()}"


async def test_the_manifests_signed_urls_open_every_file_without_a_token(
    api: httpx.AsyncClient, admin: Login, small_clip: Path, settings: Settings
) -> None:
    video = await publish_clip(api, admin, small_clip)
    manifest = video.manifest
    assert manifest["expires_at"] >= time.time() + settings.media_url_ttl
    [rendition] = manifest["renditions"]
    assert rendition["codecs"].startswith("avc1.")
    assert rendition["codecs"].endswith(",mp4a.40.2")

    mp4 = await api.get(rendition["url"])  # no Authorization
    assert mp4.status_code == 200
    assert mp4.headers["Content-Type"] == "video/mp4"
    assert mp4.headers["Cache-Control"] == IMMUTABLE
    assert rendition["size"] == len(mp4.content) == int(mp4.headers["Content-Length"])
    bearer = await api.get(f"{video.base}?quality={rendition['label']}", headers=admin.auth)
    assert bearer.content == mp4.content  # the old route serves the same file

    master = await api.get(manifest["hls_master"])
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    # The master names each variant as the manifest does, codecs included.
    assert f'CODECS="{rendition["codecs"]}"' in master.text
    # Relative URIs resolve under the signed prefix, down to the last segment.
    resolved = httpx.URL(manifest["hls_master"])
    playlist = next(line for line in master.text.splitlines() if line and line[0] != "#")
    media = await api.get(resolved.join(playlist))
    assert media.status_code == 200
    assert httpx.URL(rendition["hls"]) == resolved.join(playlist)
    names = [line for line in media.text.splitlines() if line and line[0] != "#"]
    names += [
        line.split('URI="')[1].split('"')[0] for line in media.text.splitlines() if "URI=" in line
    ]
    for name in names:
        segment = await api.get(resolved.join(playlist).join(name))
        assert (segment.status_code, segment.headers["Cache-Control"]) == (200, IMMUTABLE), name
        assert segment.content

    vtt = await api.get(manifest["storyboard"])
    assert vtt.text.startswith("WEBVTT")
    sprite = vtt.text.split("\n\n")[1].splitlines()[1].split("#")[0]
    image = await api.get(httpx.URL(manifest["storyboard"]).join(sprite))
    assert (image.status_code, image.headers["Content-Type"]) == (200, "image/jpeg")
    thumbnail = await api.get(manifest["thumbnail"])
    assert thumbnail.content[:2] == b"\xff\xd8"
    preview = await api.get(manifest["preview"])
    assert preview.content[4:8] == b"ftyp"


async def test_the_manifest_says_where_the_viewer_stopped(
    api: httpx.AsyncClient, admin: Login, learner: Login, small_clip: Path
) -> None:
    video = await publish_clip(api, admin, small_clip)
    enrolled = await api.post(f"/api/v1/courses/{video.course_id}/enroll", headers=learner.auth)
    assert enrolled.status_code == 201
    manifest = await api.get(f"{video.base}/manifest", headers=learner.auth)
    assert (manifest.json()["resume_at"], manifest.json()["completed"]) == (0, False)
    recorded = await api.post(
        "/api/v1/progress",
        json={"content_id": video.content_id, "position": 0.5, "played": [[0, 0.5]]},
        headers=learner.auth,
    )
    assert recorded.status_code == 200, recorded.text
    manifest = await api.get(f"{video.base}/manifest", headers=learner.auth)
    assert (manifest.json()["resume_at"], manifest.json()["completed"]) == (0.5, False)
    finished = await api.post(
        "/api/v1/progress",
        json={"content_id": video.content_id, "position": 1.0, "played": [[0.5, 1.0]]},
        headers=learner.auth,
    )
    assert finished.json()["completed"] is True
    manifest = await api.get(f"{video.base}/manifest", headers=learner.auth)
    assert (manifest.json()["resume_at"], manifest.json()["completed"]) == (1.0, True)


async def test_a_signed_file_is_served_with_ranges_conditionals_and_head(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    fileset = published()
    place(settings.media_dir, fileset, {"720p.mp4": BODY})
    url = signed(fileset, "720p.mp4")

    whole = await api.get(url)
    assert (whole.status_code, whole.content) == (200, BODY)
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Cache-Control"] == IMMUTABLE
    part = await api.get(url, headers={"Range": "bytes=1000-1999"})
    assert (part.status_code, part.content) == (206, BODY[1000:2000])
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(BODY)}"
    several = await api.get(url, headers={"Range": "bytes=0-9,20-29"})
    assert several.status_code == 206
    assert several.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert BODY[:10] in several.content
    assert BODY[20:30] in several.content
    beyond = await api.get(url, headers={"Range": f"bytes={len(BODY)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(BODY)}"
    head = await api.head(url, headers={"Range": "bytes=0-9"})
    assert (head.status_code, head.headers["Content-Length"], head.content) == (206, "10", b"")
    unchanged = await api.get(url, headers={"If-None-Match": whole.headers["ETag"]})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    stale = await api.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert (stale.status_code, stale.content) == (200, BODY)


async def test_a_running_jobs_files_are_revalidated_every_time(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    fileset = f"work/{uuid.uuid4()}"
    place(settings.media_dir, fileset, {"hls/360p/index.m3u8": b"#EXTM3U\n"})
    playlist = await api.get(signed(fileset, "hls/360p/index.m3u8"))
    assert playlist.status_code == 200
    assert playlist.headers["Cache-Control"] == "no-cache"
    assert playlist.headers["Content-Type"] == "application/vnd.apple.mpegurl"


async def test_a_tampered_foreign_or_expired_url_is_refused_in_json(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    mine, theirs = published(), published()
    place(settings.media_dir, mine, {"720p.mp4": BODY})
    place(settings.media_dir, theirs, {"720p.mp4": b"not yours"})
    url = signed(mine, "720p.mp4")
    kid, sig = url.split("/")[2:4]
    changed = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    for refused in (
        url.replace(sig, changed),
        url.replace(mine, theirs),
        url.replace(f"/{kid}/", "/k9/"),
        url.replace("/720p.mp4", "/../../../secret_key"),
    ):
        response = await api.get(refused)
        assert response.status_code == 403, refused
        assert response.json()["error"]["code"] == "forbidden_signature"
        assert b"not yours" not in response.content
    expired = signed(mine, "720p.mp4", expires=int(time.time()) - 10)
    gone = await api.get(expired)
    assert (gone.status_code, gone.json()["error"]["code"]) == (410, "url_expired")
    missing = await api.get(signed(mine, "1080p.mp4"))
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    directory = await api.get(signed(mine, "hls"))
    assert directory.status_code == 404
    posted = await api.post(url, content=b"x" * 100)
    assert posted.status_code == 405
    assert posted.headers["Allow"] == "GET, HEAD"
    # The same connection still serves after a body the app did not want.
    assert (await api.get(url, headers={"Range": "bytes=0-0"})).content == BODY[:1]


async def test_everything_else_still_reaches_the_api(api: httpx.AsyncClient) -> None:
    assert (await api.get("/health")).status_code == 200
    other = await api.get("/mediafoo")
    assert (other.status_code, other.json()["error"]["code"]) == (404, "not_found")


class TestWithTheDatabaseStopped:
    """A node whose PostgreSQL (its own, for this test) stops: signed media keeps playing."""

    @pytest.fixture
    def postgres(self, postgres_template: Path) -> Iterator[RunningPostgres]:
        with own_postgres(postgres_template, "lms-test-media-") as running:
            yield running

    @pytest.fixture
    def database_url(self, postgres: RunningPostgres) -> str:
        return postgres.dsn

    async def test_signed_media_needs_no_database(
        self, api: httpx.AsyncClient, settings: Settings, postgres: RunningPostgres
    ) -> None:
        fileset = published()
        place(settings.media_dir, fileset, {"720p.mp4": BODY})
        url = signed(fileset, "720p.mp4")
        await trio.to_thread.run_sync(postgres.stop)
        assert (await api.get("/api/v1/monitoring/health")).status_code == 503
        part = await api.get(url, headers={"Range": "bytes=100-199"})
        assert (part.status_code, part.content) == (206, BODY[100:200])
        assert (await api.get(url.replace(url.split("/")[3], "A" * 22))).status_code == 403
