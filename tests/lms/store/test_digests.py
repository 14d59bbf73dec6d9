"""New-content digests against a real PostgreSQL: whatever is published in a course on one day
reaches each enrolled learner as one digest listing all of it, due at the digest hour of their
own time zone, written by the transaction that publishes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import asyncpg

from lms.store import bridge, courses, digests
from lms.store import jobs as job_store
from lms.store.database import Database
from tests.jobs_setup import MANIFEST, VideoContent, claim, enqueue
from tests.progress_setup import Seeded, open_database, seed


async def _video(db: Database, course: Seeded, title: str) -> VideoContent:
    async def insert(conn: asyncpg.Connection) -> int:
        return await conn.fetchval(
            "INSERT INTO contents (course_id, title, kind) VALUES ($1, $2, 'video') RETURNING id",
            course.course_id,
            title,
        )

    owner = await db.transaction(
        lambda conn: conn.fetchval("SELECT owner_id FROM courses WHERE id = $1", course.course_id)
    )
    return VideoContent(owner, course.course_id, await db.transaction(insert))


async def _publish(db: Database, video: VideoContent) -> None:
    """Upload, transcode and complete a job for the video, as the pipeline does."""
    await enqueue(db, video)
    claimed = await claim(db)
    assert claimed is not None
    await db.transaction(job_store.complete, claimed.lease, MANIFEST, f"videos/{claimed.lease}")


async def _digests(db: Database) -> list[asyncpg.Record]:
    return await db.transaction(
        lambda conn: conn.fetch(
            "SELECT * FROM outbox WHERE kind = 'digest' ORDER BY user_id, idempotency_key"
        )
    )


def _titles(row: asyncpg.Record) -> list[str]:
    return [c["title"] for c in json.loads(row["context"])["contents"]]


async def test_two_videos_published_the_same_day_make_one_digest_per_learner(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed)
        first, second = await _video(db, course, "Lenses"), await _video(db, course, "Prisms")

        await _publish(db, first)
        await _publish(db, second)
        await _publish(db, first)  # a new upload of a published video is no news

        rows = await _digests(db)
        assert [row["user_id"] for row in rows] == course.learners  # not the outsider
        for row in rows:
            assert _titles(row) == ["Lenses", "Prisms"]
            assert row["state"] == "pending"
            assert row["template"] == "digest"
            assert row["idempotency_key"].startswith(
                f"digest:user:{row['user_id']}:course:{course.course_id}:"
            )


async def test_a_text_joins_the_digest_when_it_is_created(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=1)
        await _publish(db, await _video(db, course, "Lenses"))
        await db.transaction(
            courses.insert_content, course.course_id, {"title": "Notes", "kind": "text"}
        )
        # A video content is news only once its video is published.
        await db.transaction(
            courses.insert_content, course.course_id, {"title": "Soon", "kind": "video"}
        )

        (row,) = await _digests(db)
        assert _titles(row) == ["Lenses", "Notes"]


async def test_a_digest_is_due_at_the_digest_hour_of_the_learners_own_day(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=1)
        (learner,) = course.learners
        await db.transaction(
            lambda conn: conn.execute(
                "UPDATE users SET time_zone = 'Asia/Tokyo' WHERE id = $1", learner
            )
        )
        morning = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo
        late = datetime(2026, 12, 6, 7, 56, tzinfo=UTC)  # 16:56, past the cut-off

        await db.transaction(digests.add_to_digests, course.videos[0], morning)
        await db.transaction(digests.add_to_digests, course.videos[1], late)

        today, tomorrow = await _digests(db)
        assert today["idempotency_key"].endswith(":2026-12-06")
        assert today["due_at"] == datetime(2026, 12, 6, 8, 0, tzinfo=UTC)  # 17:00 in Tokyo
        assert tomorrow["idempotency_key"].endswith(":2026-12-07")
        assert tomorrow["due_at"] == today["due_at"] + timedelta(days=1)
        assert _titles(today) == ["video 0"]
        assert _titles(tomorrow) == ["video 1"]


async def test_a_digest_already_claimed_is_never_appended_to(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=1)
        now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
        await db.transaction(digests.add_to_digests, course.videos[0], now)
        await db.transaction(lambda conn: conn.execute("UPDATE outbox SET state = 'sending'"))

        added = await db.transaction(digests.add_to_digests, course.videos[1], now)

        assert added == 0
        (row,) = await _digests(db)
        assert _titles(row) == ["video 0"]
