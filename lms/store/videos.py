"""What a content's video is right now, for the streaming edge (asyncpg; run through
`Database.connection`): its newest job, its published video, and who may see them."""

from __future__ import annotations

import asyncpg
import msgspec

from lms.store.jobs import job_view, newest_job, renditions_of
from proto.jobs import JobState, JobView
from proto.media import MediaManifest, Rendition

_manifest = msgspec.json.Decoder(MediaManifest)


class VideoRecord(msgspec.Struct, frozen=True):
    """A content's newest job, its published video, who may see them, and where the asking
    user is in it."""

    owner_id: int
    course_id: int
    kind: str
    enrolled: bool  # the asking user
    job: JobView | None
    job_renditions: list[Rendition]
    job_workdir: str | None
    published: str | None
    manifest: MediaManifest | None
    position: float = 0.0  # the asking user's saved position, seconds
    completed: bool = False  # whether the asking user completed it


async def video_record(
    conn: asyncpg.Connection, content_id: int, user_id: int
) -> VideoRecord | None:
    """Read on one snapshot (pass it to `Database.connection`): a job completing between two
    reads of their own would show as ready with nothing published yet."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        content = await conn.fetchrow(
            """
            SELECT c.kind, c.course_id, co.owner_id, v.path, v.manifest,
                EXISTS (SELECT 1 FROM enrollments e
                        WHERE e.course_id = c.course_id AND e.user_id = $2) AS enrolled,
                coalesce(p.position, 0) AS position, p.completed_at IS NOT NULL AS completed
            FROM contents c JOIN courses co ON co.id = c.course_id
            LEFT JOIN videos v ON v.content_id = c.id
            LEFT JOIN progress p ON p.user_id = $2 AND p.content_id = c.id
            WHERE c.id = $1
            """,
            content_id,
            user_id,
        )
        if content is None:
            return None
        job = await newest_job(conn, content_id)
    running = job if job is not None and job["state"] == JobState.RUNNING else None
    return VideoRecord(
        owner_id=content["owner_id"],
        course_id=content["course_id"],
        kind=content["kind"],
        enrolled=content["enrolled"],
        job=None if job is None else job_view(job),
        job_renditions=[] if running is None else renditions_of(running),
        job_workdir=None if running is None else running["workdir"],
        published=content["path"],
        manifest=None if content["manifest"] is None else _manifest.decode(content["manifest"]),
        position=content["position"],
        completed=content["completed"],
    )
