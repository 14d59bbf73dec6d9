"""What a player is told a video can play, from the record of its jobs (no server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lms.domain.jobs import status_of
from lms.jobs.videos import build_manifest, hls_path, mp4_for, storyboard_files
from lms.store.videos import VideoRecord
from proto.jobs import JobState, JobStatus, JobView
from proto.media import MediaManifest, Rendition, Storyboard

BASE = "/api/v1/stream/video/7"
R360 = Rendition("360p", 640, 360, 800_000, "360p.mp4", "hls/360p/index.m3u8")
R720 = Rendition("720p", 1280, 720, 2_800_000, "720p.mp4", "hls/720p/index.m3u8")
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
        "kind": "video",
        "enrolled": True,
        "job": None,
        "job_renditions": [],
        "job_workdir": None,
        "published": None,
        "manifest": None,
    }
    return VideoRecord(**(defaults | values))  # type: ignore[arg-type]


def test_nothing_uploaded_means_no_manifest() -> None:
    assert build_manifest(record(), BASE) is None


def test_a_queued_upload_is_queued_with_nothing_to_play() -> None:
    manifest = build_manifest(record(job=job(JobState.QUEUED)), BASE)
    assert (manifest.status, manifest.renditions, manifest.hls_master) == (
        JobStatus.QUEUED,
        [],
        None,
    )


def test_a_first_transcode_lists_its_renditions_as_hls_as_soon_as_they_play() -> None:
    playing = Rendition("360p", 640, 360, 800_000, None, "hls/360p/index.m3u8")
    manifest = build_manifest(
        record(
            job=job(JobState.RUNNING, "transcoding", 0.4),
            job_renditions=[playing],
            job_workdir="work/abc",
        ),
        BASE,
    )
    assert (manifest.status, manifest.progress) == (JobStatus.TRANSCODING, 0.4)
    [view] = manifest.renditions
    assert (view.label, view.url, view.hls) == ("360p", None, f"{BASE}/hls/360p/index.m3u8")
    assert manifest.hls_master == f"{BASE}/hls/master.m3u8"
    assert manifest.thumbnail is None
    assert manifest.duration is None


def test_a_published_video_lists_everything_and_keeps_playing_during_a_new_upload() -> None:
    published = record(job=job(JobState.DONE, None, 1.0), published="videos/7/x", manifest=MEDIA)
    manifest = build_manifest(published, BASE)
    assert manifest.status is JobStatus.READY
    assert [(r.label, r.url) for r in manifest.renditions] == [
        ("720p", f"{BASE}?quality=720p"),
        ("360p", f"{BASE}?quality=360p"),
    ]
    assert (manifest.thumbnail, manifest.preview, manifest.duration) == (
        f"{BASE}/thumbnail",
        f"{BASE}/preview",
        61.5,
    )
    assert manifest.storyboard == f"{BASE}/storyboard/storyboard.vtt"
    replacing = build_manifest(
        record(job=job(JobState.RUNNING, "probing"), published="videos/7/x", manifest=MEDIA),
        BASE,
    )
    assert replacing.status is JobStatus.PROBING
    assert len(replacing.renditions) == 2


def test_the_best_mp4_is_the_tallest_unless_a_quality_is_asked_for() -> None:
    assert mp4_for([R360, R720], None) == "720p.mp4"
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
