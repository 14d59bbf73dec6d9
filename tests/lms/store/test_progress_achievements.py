"""Achievement mail written by the progress writer's statement, against a real PostgreSQL: a
learner's first finished video and a completed course each write one outbox row, in the
statement that stored the completion, and never again however the heartbeats repeat."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg

from lms.domain.progress import prepare
from lms.store import bridge
from lms.store.database import Database
from lms.store.progress import ProgressRows
from proto.progress import ProgressUpdate
from tests.progress_setup import DURATION, LONG_AGO, heartbeat, open_database, seed


async def _achievements(db: Database) -> list[tuple[str, str, dict]]:
    rows = await db.transaction(
        lambda conn: conn.fetch(
            "SELECT idempotency_key, template, context FROM outbox "
            "WHERE kind = 'achievement' ORDER BY id"
        )
    )
    return [(r["idempotency_key"], r["template"], json.loads(r["context"])) for r in rows]


def _read(user: int, text: int):
    return prepare(user, ProgressUpdate(content_id=text, completed=True), now=datetime.now(UTC))


async def test_a_first_video_and_a_completed_course_each_write_one_mail(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=2, opened_at=LONG_AGO)
        await db.transaction(
            lambda conn: conn.execute("DELETE FROM contents WHERE id = $1", course.unprocessed)
        )
        ada, bob = course.learners
        (first, second), text = course.videos, course.text
        rows = ProgressRows()

        async def apply(*writes) -> None:
            await db.connection(rows.apply_batch, list(writes))

        await apply(heartbeat(ada, first, (0, 60)))  # started, not finished
        assert await _achievements(db) == []

        await apply(heartbeat(ada, first, (0, DURATION)), heartbeat(ada, first, (0, DURATION)))
        await apply(heartbeat(ada, first, (0, DURATION)))  # the same again
        await apply(heartbeat(ada, second, (0, DURATION)))  # a second video is no first
        assert [key for key, _, _ in await _achievements(db)] == [
            f"achievement:user:{ada}:first_video"
        ]

        await apply(_read(ada, text))  # the last content: the course is complete
        await apply(_read(ada, text))
        # Bob finishes both videos in one batch: one first video, which of them is the first.
        await apply(heartbeat(bob, second, (0, DURATION)), heartbeat(bob, first, (0, DURATION)))

        mails = await _achievements(db)
        assert [(key, template) for key, template, _ in mails] == [
            (f"achievement:user:{ada}:first_video", "achievement_first_video"),
            (f"achievement:user:{ada}:course:{course.course_id}", "achievement_course"),
            (f"achievement:user:{bob}:first_video", "achievement_first_video"),
        ]
        first_video = mails[0][2]
        assert first_video["content"] == {"id": first, "title": "video 0"}
        assert first_video["course"] == {"id": course.course_id, "title": "Optics"}
        assert mails[1][2] == {
            "name": "learner0@bench.lms",
            "course": {"id": course.course_id, "title": "Optics"},
        }


async def test_a_learner_who_finished_a_video_before_gets_no_first_video_mail(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=1, opened_at=LONG_AGO)
        (ada,), (first, second) = course.learners, course.videos

        async def finished_before_mail_existed(conn: asyncpg.Connection) -> None:
            await conn.execute(
                """
                UPDATE progress
                SET played = ARRAY[0, $3]::float8[], watched_seconds = $3, duration = $3,
                    completed_at = now()
                WHERE user_id = $1 AND content_id = $2
                """,
                ada,
                first,
                DURATION,
            )

        await db.transaction(finished_before_mail_existed)
        await db.connection(ProgressRows().apply_batch, [heartbeat(ada, second, (0, DURATION))])

        assert await _achievements(db) == []
