"""What a video content plays: its manifest, and the files the manifest points to.

A content plays its published video (the last job that finished), or, while its first job runs,
the renditions that job has made playable so far (from the job's work dir: as HLS, their MP4s
come at the end). While a newer upload transcodes, the published video keeps playing and the
manifest's status is the new job's. Enrolled learners, the course's instructor and admins may
watch.

The manifest's URLs are signed (lms/domain/media_urls.py): each opens its file set - the
published video's directory, or the running job's - without a token until `expires_at`, so
`<video src>`, hls.js, a CDN and nginx fetch them directly; the access check is the manifest's.

The Bearer routes stay for API clients. They find every file through the record, never through a
path from the request alone: a rendition by its label, the thumbnail, the preview, the
storyboard's two files by name, and HLS files by a path that must stay inside the `hls/`
directory of the video.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lms.config import Settings
from lms.domain.access import Principal, may_read_contents
from lms.domain.media_urls import MediaUrls, plain_relative_path
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
AUTO = "auto"  # `?quality=auto`: the best rendition there is


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
    """The MP4 of the rendition of that label, or of the tallest one for `auto` or when no
    quality is asked for; None if there is none (yet: while a job runs, renditions play as HLS
    only)."""
    with_mp4 = [r for r in renditions if r.mp4 is not None]
    if quality in (None, AUTO):
        best = max(with_mp4, key=lambda r: r.height, default=None)
    else:
        best = next((r for r in with_mp4 if r.label == quality), None)
    return None if best is None else best.mp4


def hls_path(path: str) -> str | None:
    """`path` (as requested under `.../hls/`) inside the video's HLS dir, or None if it would
    leave it or is not a plain relative path."""
    return f"{HLS_DIR}/{path}" if plain_relative_path(path) else None


def storyboard_files(manifest: MediaManifest | None) -> dict[str, str]:
    """The storyboard's files by the name they are served under (the VTT names the image
    relative to itself, so both are served side by side)."""
    if manifest is None or manifest.storyboard is None:
        return {}
    board = manifest.storyboard
    return {PurePosixPath(path).name: path for path in (board.vtt, board.image)}


def build_manifest(record: VideoRecord, urls: MediaUrls, now: float) -> VideoManifest | None:
    """The manifest a player reads, its URLs signed by `urls` at `now`; None when no video was
    ever uploaded."""
    job = record.job
    if job is None and record.published is None:
        return None
    found = playable(record)
    expires = prefix = None
    media = None
    renditions: list[Rendition] = []
    master = None
    if found is not None:
        media, renditions = found.manifest, found.renditions
        expires = urls.expiry(now)
        prefix = urls.fileset(found.root, expires)
        if media is not None:
            master = media.hls_master
        elif any(r.playlist for r in renditions):
            master = HLS_MASTER

    def signed(file: str | None) -> str | None:
        return None if file is None or prefix is None else f"{prefix}/{file}"

    board = None if media is None else media.storyboard
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
                url=signed(r.mp4),
                hls=signed(r.playlist),
                codecs=r.codecs,
                size=r.size if r.mp4 is not None else None,
            )
            for r in renditions
        ],
        course_id=record.course_id,
        resume_at=record.position,
        completed=record.completed,
        expires_at=expires,
        hls_master=signed(master),
        thumbnail=None if media is None else signed(media.thumbnail),
        storyboard=None if board is None else signed(board.vtt),
        preview=None if media is None else signed(media.preview),
        duration=None if media is None else media.duration,
    )


class Videos:
    def __init__(
        self, db: Database, media_dir: Path, urls: MediaUrls, accel_redirect: str | None = None
    ) -> None:
        self._db = db
        self._media_dir = media_dir
        self._urls = urls
        self._accel_redirect = accel_redirect

    @classmethod
    def configured(cls, settings: Settings, db: Database) -> Videos:
        """Signing with the settings' media keys (after `Settings.with_secret`)."""
        urls = MediaUrls(settings.media_keys, settings.media_url_ttl, settings.media_base_url)
        return cls(db, settings.media_dir, urls, settings.accel_redirect)

    def accel_redirect(self, path: Path) -> str | None:
        """Where nginx's internal location finds `path` (a file this finds on the media volume)
        for an `X-Accel-Redirect`; None when the node sends files itself."""
        if self._accel_redirect is None:
            return None
        return self._accel_redirect + path.relative_to(self._media_dir).as_posix()

    async def _record(self, who: Principal, content_id: int) -> VideoRecord:
        record = await self._db.connection(video_record, content_id, who.user_id)
        if record is None or record.kind != ContentKind.VIDEO:
            raise NotFound(f"no video content with id {content_id}")
        if not may_read_contents(who, record.owner_id, record.enrolled):
            raise Forbidden("enrol in this course to watch its videos")
        return record

    async def manifest(self, who: Principal, content_id: int) -> VideoManifest:
        manifest = build_manifest(await self._record(who, content_id), self._urls, time.time())
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
