"""A content's video as the streaming edge reads it, on a real PostgreSQL."""

from __future__ import annotations

import asyncpg

from lms.store import jobs
from lms.store.videos import VideoRecord, video_record
from proto.jobs import JobState, JobStatus, Lease, LeaseStatus
from tests.databases import open_database
from tests.jobs_setup import MANIFEST, RENDITION, VideoContent, claim, enqueue, video_content


class CompletedBetweenReads:
    """A real connection on which a job completes (on another connection) right after the
    first row is read: what a node's manifest read meets when a worker finishes meanwhile."""

    def __init__(self, conn: asyncpg.Connection, dsn: str, lease: Lease) -> None:
        self._conn = conn
        self._dsn = dsn
        self._lease: Lease | None = lease

    def transaction(self, **options: object) -> asyncpg.transaction.Transaction:
        return self._conn.transaction(**options)

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        row = await self._conn.fetchrow(query, *args)
        lease, self._lease = self._lease, None
        if lease is not None:
            other = await asyncpg.connect(self._dsn)
            try:
                async with other.transaction():
                    await jobs.complete(other, lease, MANIFEST, "videos/done")
            finally:
                await other.close()
        return row


async def test_a_job_completing_during_a_read_is_seen_before_or_after_never_half(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        content = await video_content(db)
        await enqueue(db, content)
        claimed = await claim(db)
        assert await db.transaction(jobs.add_rendition, claimed.lease, RENDITION) is (
            LeaseStatus.HELD
        )

        async def read(conn: asyncpg.Connection) -> VideoRecord | None:
            raced = CompletedBetweenReads(conn, database_url, claimed.lease)
            return await video_record(raced, content.content_id, 0)  # type: ignore[arg-type]

        record = await db.connection(read)
        # The read's snapshot predates the completion: still running, playing what the job
        # made so far (read apart, it was "ready" with nothing published).
        assert record.job.state is JobState.RUNNING
        assert record.job_renditions == [RENDITION]
        assert record.published is None
        after = await db.connection(video_record, content.content_id, 0)
        assert after.job.status is JobStatus.READY
        assert after.published == "videos/done"


async def _watched(conn: asyncpg.Connection, content: VideoContent) -> int:
    """A learner enrolled in the content's course, who stopped at 42.5 s and completed it."""
    learner = await conn.fetchval(
        "INSERT INTO users (email, name, password_hash) VALUES ('l@earn.er', 'L', 'x') RETURNING id"
    )
    await conn.execute(
        "INSERT INTO enrollments (course_id, user_id) VALUES ($1, $2)", content.course_id, learner
    )
    await conn.execute(
        "INSERT INTO progress (user_id, content_id, course_id, position, completed_at) "
        "VALUES ($1, $2, $3, 42.5, now())",
        learner,
        content.content_id,
        content.course_id,
    )
    return learner


async def test_the_record_carries_the_asking_users_position_and_completion(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        content = await video_content(db)
        learner = await db.transaction(_watched, content)
        mine = await db.connection(video_record, content.content_id, learner)
        assert (mine.enrolled, mine.position, mine.completed) == (True, 42.5, True)
        assert mine.course_id == content.course_id
        owners = await db.connection(video_record, content.content_id, content.owner_id)
        assert (owners.position, owners.completed) == (0.0, False)
