"""What a player is told a video can play, from the record of its jobs (no server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lms.domain.jobs import status_of
from lms.domain.media_urls import MediaFile, MediaKey, MediaUrls, key_map, verify
from lms.jobs.videos import build_manifest, hls_path, mp4_for, storyboard_files
from lms.store.videos import VideoRecord
from proto.jobs import JobState, JobStatus, JobView
from proto.media import MediaManifest, Rendition, Storyboard

KEY = MediaKey("k1", "x" * 32)
URLS = MediaUrls((KEY,), ttl=3600, base_url="https://cdn.example.edu")
NOW = 1_765_000_000.0
EXPIRES = URLS.expiry(NOW)
LEASE = "6f1c2d3e-9a0b-4c5d-8e7f-0123456789ab"
PUBLISHED = f"videos/7/{LEASE}"
WORK = f"work/{LEASE}"
R360 = Rendition(
    "360p", 640, 360, 800_000, "360p.mp4", "hls/360p/index.m3u8", "avc1.64001e,mp4a.40.2", 4096
)
R720 = Rendition(
    "720p", 1280, 720, 2_800_000, "720p.mp4", "hls/720p/index.m3u8", "avc1.64001f,mp4a.40.2", 9999
)
MEDIA = MediaManifest(
    duration=61.5,
    renditions=[R720, R360],
    thumbnail="thumbnail.jpg",
    storyboard=Storyboard(image="storyboard.jpg", vtt="storyboard.vtt"),
    preview="preview.mp4",
    hls_master="hls/master.m3u8",
    has_audio=True,
)


def job(state: JobState, stage: str | None = None, progress: float = 0.0) -> JobView:
    now = datetime.now(UTC)
    return JobView(
        id=1, content_id=7, course_id=3, uploader_id=2, state=state,
        status=status_of(state, stage), stage=stage, progress=progress, eta_seconds=None,
        attempts=1, max_attempts=3, worker_id=None, node_id=None, heartbeat_at=None,
        renditions=[], error=None, created_at=now, started_at=None, finished_at=None,
    )  # fmt: skip


def record(**values: object) -> VideoRecord:
    defaults: dict[str, object] = {
        "owner_id": 1,
        "course_id": 3,
        "kind": "video",
        "enrolled": True,
        "job": None,
        "job_renditions": [],
        "job_workdir": None,
        "published": None,
        "manifest": None,
    }
    return VideoRecord(**(defaults | values))  # type: ignore[arg-type]


def opens(url: str | None) -> str | MediaFile:
    """What a signed URL of the manifest opens (the file's path), as the media app verifies it."""
    assert url is not None
    assert url.startswith("https://cdn.example.edu/media/")
    opened = verify(url.removeprefix("https://cdn.example.edu"), key_map([KEY]), NOW)
    assert isinstance(opened, MediaFile), url
    return opened.path


def test_nothing_uploaded_means_no_manifest() -> None:
    assert build_manifest(record(), URLS, NOW) is None


def test_a_queued_upload_is_queued_with_nothing_to_play() -> None:
    manifest = build_manifest(record(job=job(JobState.QUEUED)), URLS, NOW)
    assert (manifest.status, manifest.renditions, manifest.hls_master) == (
        JobStatus.QUEUED,
        [],
        None,
    )
    assert manifest.expires_at is None


def test_a_first_transcode_lists_its_renditions_as_hls_as_soon_as_they_play() -> None:
    playing = Rendition("360p", 640, 360, 800_000, None, "hls/360p/index.m3u8", "avc1.64001e")
    manifest = build_manifest(
        record(
            job=job(JobState.RUNNING, "transcoding", 0.4),
            job_renditions=[playing],
            job_workdir=WORK,
        ),
        URLS,
        NOW,
    )
    assert (manifest.status, manifest.progress) == (JobStatus.TRANSCODING, 0.4)
    [view] = manifest.renditions
    assert (view.label, view.url, view.codecs, view.size) == ("360p", None, "avc1.64001e", None)
    assert opens(view.hls) == f"{WORK}/hls/360p/index.m3u8"
    assert opens(manifest.hls_master) == f"{WORK}/hls/master.m3u8"
    assert manifest.expires_at == EXPIRES
    assert manifest.thumbnail is None
    assert manifest.duration is None


def test_a_published_video_lists_everything_signed_and_keeps_playing_during_a_new_upload() -> None:
    published = record(job=job(JobState.DONE, None, 1.0), published=PUBLISHED, manifest=MEDIA)
    manifest = build_manifest(published, URLS, NOW)
    assert manifest.status is JobStatus.READY
    assert [(r.label, opens(r.url), r.codecs, r.size) for r in manifest.renditions] == [
        ("720p", f"{PUBLISHED}/720p.mp4", "avc1.64001f,mp4a.40.2", 9999),
        ("360p", f"{PUBLISHED}/360p.mp4", "avc1.64001e,mp4a.40.2", 4096),
    ]
    assert [opens(r.hls) for r in manifest.renditions] == [
        f"{PUBLISHED}/hls/720p/index.m3u8",
        f"{PUBLISHED}/hls/360p/index.m3u8",
    ]
    assert (opens(manifest.thumbnail), opens(manifest.preview), opens(manifest.storyboard)) == (
        f"{PUBLISHED}/thumbnail.jpg",
        f"{PUBLISHED}/preview.mp4",
        f"{PUBLISHED}/storyboard.vtt",
    )
    assert opens(manifest.hls_master) == f"{PUBLISHED}/hls/master.m3u8"
    assert (manifest.duration, manifest.expires_at) == (61.5, EXPIRES)
    assert NOW + URLS.ttl <= EXPIRES
    replacing = build_manifest(
        record(job=job(JobState.RUNNING, "probing"), published=PUBLISHED, manifest=MEDIA),
        URLS,
        NOW,
    )
    assert replacing.status is JobStatus.PROBING
    assert len(replacing.renditions) == 2
    assert opens(replacing.hls_master) == f"{PUBLISHED}/hls/master.m3u8"


def test_the_manifest_tells_the_viewer_where_to_resume() -> None:
    fresh = build_manifest(record(published=PUBLISHED, manifest=MEDIA), URLS, NOW)
    assert (fresh.resume_at, fresh.completed) == (0.0, False)
    watched = record(published=PUBLISHED, manifest=MEDIA, position=42.5, completed=True)
    manifest = build_manifest(watched, URLS, NOW)
    assert (manifest.resume_at, manifest.completed) == (42.5, True)


def test_the_manifest_names_the_course_whose_progress_socket_the_player_reports_to() -> None:
    manifest = build_manifest(record(published=PUBLISHED, manifest=MEDIA, course_id=9), URLS, NOW)
    assert manifest.course_id == 9


def test_the_best_mp4_is_the_tallest_for_auto_or_no_quality() -> None:
    assert mp4_for([R360, R720], None) == "720p.mp4"
    assert mp4_for([R360, R720], "auto") == "720p.mp4"
    assert mp4_for([R360, R720], "360p") == "360p.mp4"
    assert mp4_for([R360, R720], "1080p") is None
    assert mp4_for([Rendition("360p", 640, 360, 1, None, "hls/360p/index.m3u8")], None) is None


@pytest.mark.parametrize(
    ("requested", "inside"),
    [
        ("master.m3u8", "hls/master.m3u8"),
        ("720p/segment_00001.m4s", "hls/720p/segment_00001.m4s"),
        ("../secret", None),
        ("720p/../../secret", None),
        (".hidden", None),
        ("", None),
        ("a//b", None),
        ("/etc/passwd", None),
        ("720p/init.mp4\x00", None),
    ],
)
def test_hls_requests_stay_inside_the_hls_dir(requested: str, inside: str | None) -> None:
    assert hls_path(requested) == inside


def test_the_storyboard_serves_exactly_its_two_files() -> None:
    assert storyboard_files(MEDIA) == {
        "storyboard.vtt": "storyboard.vtt",
        "storyboard.jpg": "storyboard.jpg",
    }
    assert storyboard_files(None) == {}
