"""A database with a course and a video content in it, jobs queued for it and claimed, for the
job store, video record and transcoder pool tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from lms.store import jobs as store
from lms.store.database import Database
from proto.jobs import ClaimedJob, JobView
from proto.media import MediaManifest, Rendition

LEASE = 30.0
RENDITION = Rendition("360p", 640, 360, 800_000, "360p.mp4", "hls/360p/index.m3u8")
MANIFEST = MediaManifest(
    duration=12.5,
    renditions=[RENDITION],
    thumbnail="thumbnail.jpg",
    storyboard=None,
    preview=None,
    hls_master="hls/master.m3u8",
    has_audio=True,
)


@dataclass(frozen=True)
class VideoContent:
    owner_id: int
    course_id: int
    content_id: int


async def _insert_video_content(conn: asyncpg.Connection) -> VideoContent:
    email = f"{uuid.uuid4().hex[:8]}@teach.er"
    owner = await conn.fetchval(
        "INSERT INTO users (email, name, password_hash, role) "
        "VALUES ($1, 'Teacher', 'x', 'instructor') RETURNING id",
        email,
    )
    course = await conn.fetchval(
        "INSERT INTO courses (owner_id, title) VALUES ($1, 'Optics') RETURNING id", owner
    )
    content = await conn.fetchval(
        "INSERT INTO contents (course_id, title, kind) VALUES ($1, 'Lenses', 'video') RETURNING id",
        course,
    )
    return VideoContent(owner, course, content)


async def video_content(db: Database) -> VideoContent:
    return await db.transaction(_insert_video_content)


async def enqueue(
    db: Database, content: VideoContent, source: str = "uploads/x", max_attempts: int = 3
) -> JobView:
    """Queue a job for the content (as a finished upload does) and return it."""
    jobs = await db.transaction(
        store.enqueue,
        content_id=content.content_id,
        upload_id=None,
        uploader_id=content.owner_id,
        source=source,
        max_attempts=max_attempts,
    )
    return jobs[0]


async def claim(db: Database, worker: str = "w1", lease: float = LEASE) -> ClaimedJob | None:
    lease_id = str(uuid.uuid4())
    return await db.transaction(
        store.claim,
        worker_id=worker,
        node_id="node-a",
        lease_id=lease_id,
        lease_seconds=lease,
        workdir=f"work/{lease_id}",
    )
