"""What a video content plays: its manifest, and the files the manifest points to.

A content plays its published video (the last job that finished), or, while its first job runs,
the renditions that job has made playable so far (from the job's work dir: as HLS, their MP4s
come at the end). While a newer upload transcodes, the published video keeps playing and the
manifest's status is the new job's. Enrolled learners, the course's instructor and admins may
watch.

Every file is found through the manifest, never through a path from the request alone: a
rendition by its label, the thumbnail, the preview, the storyboard's two files by name, and HLS
files by a path that must stay inside the `hls/` directory of the video.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lms.domain.access import Principal, may_read_contents
from lms.errors import Forbidden, NotFound
from lms.store.database import Database
from lms.store.videos import VideoRecord, video_record
from proto.api import ContentKind
from proto.jobs import JobStatus, RenditionView, VideoManifest
from proto.media import MediaManifest, Rendition

# The worker's layout (`media.transcode.HLS_DIR` and `MASTER`; not imported, as that would load
# PyAV into every node; tests/lms/http/test_streaming.py checks they agree). The master exists
# from the first playable rendition on, so a player can start before the job ends.
HLS_DIR = "hls"
HLS_MASTER = f"{HLS_DIR}/master.m3u8"
# One path segment a player may ask for: no separators, no leading dot (so no "..").
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Playable:
    """The files a content can play right now."""

    root: str  # relative to the media volume
    renditions: list[Rendition]
    manifest: MediaManifest | None  # None while the first job still runs


def playable(record: VideoRecord) -> Playable | None:
    if record.published is not None and record.manifest is not None:
        return Playable(record.published, record.manifest.renditions, record.manifest)
    if record.job_workdir is not None:
        return Playable(record.job_workdir, record.job_renditions, None)
    return None


def mp4_for(renditions: list[Rendition], quality: str | None) -> str | None:
    """The MP4 of the rendition of that label, or of the tallest one when no quality is asked
    for; None if there is none (yet: while a job runs, renditions play as HLS only)."""
    with_mp4 = [r for r in renditions if r.mp4 is not None]
    if quality is None:
        best = max(with_mp4, key=lambda r: r.height, default=None)
    else:
        best = next((r for r in with_mp4 if r.label == quality), None)
    return None if best is None else best.mp4


def hls_path(path: str) -> str | None:
    """`path` (as requested under `.../hls/`) inside the video's HLS dir, or None if it would
    leave it or is not a plain relative path."""
    parts = path.split("/")
    if not all(_SEGMENT.match(part) for part in parts):
        return None
    return str(PurePosixPath(HLS_DIR, *parts))


def _hls_url(base: str, relative: str | None) -> str | None:
    """The URL of a file the manifest names under the HLS dir; None for any other path."""
    if relative is None or hls_path(relative.removeprefix(f"{HLS_DIR}/")) != relative:
        return None
    return f"{base}/{relative}"


def storyboard_files(manifest: MediaManifest | None) -> dict[str, str]:
    """The storyboard's files by the name they are served under (the VTT names the image
    relative to itself, so both are served side by side)."""
    if manifest is None or manifest.storyboard is None:
        return {}
    board = manifest.storyboard
    return {PurePosixPath(path).name: path for path in (board.vtt, board.image)}


def build_manifest(record: VideoRecord, base: str) -> VideoManifest | None:
    """The manifest a player reads (URLs under `base`); None when no video was ever uploaded."""
    job = record.job
    if job is None and record.published is None:
        return None
    found = playable(record)
    media = None if found is None else found.manifest
    renditions = [] if found is None else found.renditions
    if media is not None:
        master = media.hls_master
    else:
        master = HLS_MASTER if any(r.playlist for r in renditions) else None
    vtt = None if media is None or media.storyboard is None else media.storyboard.vtt
    return VideoManifest(
        status=JobStatus.READY if job is None else job.status,
        progress=1.0 if job is None else job.progress,
        error=None if job is None else job.error,
        renditions=[
            RenditionView(
                label=r.label,
                width=r.width,
                height=r.height,
                bitrate=r.bitrate,
                url=None if r.mp4 is None else f"{base}?quality={r.label}",
                hls=_hls_url(base, r.playlist),
            )
            for r in renditions
        ],
        hls_master=_hls_url(base, master),
        thumbnail=None if media is None else f"{base}/thumbnail",
        storyboard=None if vtt is None else f"{base}/storyboard/{PurePosixPath(vtt).name}",
        preview=None if media is None or media.preview is None else f"{base}/preview",
        duration=None if media is None else media.duration,
    )


class Videos:
    def __init__(self, db: Database, media_dir: Path) -> None:
        self._db = db
        self._media_dir = media_dir

    async def _record(self, who: Principal, content_id: int) -> VideoRecord:
        record = await self._db.connection(video_record, content_id, who.user_id)
        if record is None or record.kind != ContentKind.VIDEO:
            raise NotFound(f"no video content with id {content_id}")
        if not may_read_contents(who, record.owner_id, record.enrolled):
            raise Forbidden("enrol in this course to watch its videos")
        return record

    async def manifest(self, who: Principal, content_id: int, base: str) -> VideoManifest:
        manifest = build_manifest(await self._record(who, content_id), base)
        if manifest is None:
            raise NotFound("no video has been uploaded to this content yet")
        return manifest

    async def rendition(self, who: Principal, content_id: int, quality: str | None) -> Path:
        found = await self._playable(who, content_id)
        mp4 = mp4_for(found.renditions, quality)
        if mp4 is None:
            wanted = f"{quality} MP4" if quality else "MP4"
            raise NotFound(f"this video has no {wanted} (yet: its HLS playlist may play)")
        return self._media_dir / found.root / mp4

    async def thumbnail(self, who: Principal, content_id: int) -> Path:
        root, media = await self._finished(who, content_id)
        return root / media.thumbnail

    async def preview(self, who: Principal, content_id: int) -> Path:
        root, media = await self._finished(who, content_id)
        if media.preview is None:
            raise NotFound("this video has no preview")
        return root / media.preview

    async def storyboard(self, who: Principal, content_id: int, name: str) -> Path:
        root, media = await self._finished(who, content_id)
        path = storyboard_files(media).get(name)
        if path is None:
            raise NotFound("this video has no such storyboard file")
        return root / path

    async def hls(self, who: Principal, content_id: int, path: str) -> Path:
        found = await self._playable(who, content_id)
        inside = hls_path(path)
        if inside is None:
            raise NotFound("no such HLS file")
        return self._media_dir / found.root / inside

    async def _playable(self, who: Principal, content_id: int) -> Playable:
        found = playable(await self._record(who, content_id))
        if found is None:
            raise NotFound("this video is not playable yet")
        return found

    async def _finished(self, who: Principal, content_id: int) -> tuple[Path, MediaManifest]:
        """The published video's dir and manifest (thumbnails and the like come at the end)."""
        found = await self._playable(who, content_id)
        if found.manifest is None:
            raise NotFound("this video is still being processed")
        return self._media_dir / found.root, found.manifest
