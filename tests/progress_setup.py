"""A course for the progress writer and store tests (and the progress benchmark): enrolled
learners, videos of a known duration, a text, a video still processing and an outsider; and
heartbeats to record in it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from lms.domain.progress import prepare
from lms.store.database import Database
from proto.progress import ProgressUpdate, ProgressWrite

DURATION = 3600.0


@dataclass(frozen=True)
class Seeded:
    """A course with enrolled learners, videos of `DURATION` seconds, a text and an outsider."""

    course_id: int
    learners: list[int]
    videos: list[int]
    text: int
    unprocessed: int  # a video whose duration is not known yet
    outsider: int  # a user not enrolled


async def seed(conn: asyncpg.Connection, learners: int = 3, videos: int = 2) -> Seeded:
    async def user(name: str) -> int:
        return await conn.fetchval(
            "INSERT INTO users (email, name, password_hash) VALUES ($1, $1, 'x') RETURNING id",
            f"{name}@bench.lms",
        )

    owner = await user("owner")
    course = await conn.fetchval(
        "INSERT INTO courses (owner_id, title) VALUES ($1, 'Optics') RETURNING id", owner
    )

    async def content(kind: str, duration: float | None, position: int) -> int:
        return await conn.fetchval(
            """
            INSERT INTO contents (course_id, title, kind, position, duration_seconds)
            VALUES ($1, $2, $3, $4, $5) RETURNING id
            """,
            course,
            f"{kind} {position}",
            kind,
            position,
            duration,
        )

    video_ids = [await content("video", DURATION, i) for i in range(videos)]
    text = await content("text", None, videos)
    unprocessed = await content("video", None, videos + 1)
    learner_ids = [await user(f"learner{i}") for i in range(learners)]
    await conn.executemany(
        "INSERT INTO enrollments (course_id, user_id) VALUES ($1, $2)",
        [(course, learner) for learner in learner_ids],
    )
    return Seeded(course, learner_ids, video_ids, text, unprocessed, await user("outsider"))


@asynccontextmanager
async def open_database(dsn: str, max_size: int = 4) -> AsyncIterator[Database]:
    """A pool on the test's database; must run inside `bridge.open_bridge()`."""
    db = await Database.connect(dsn, min_size=1, max_size=max_size)
    try:
        yield db
    finally:
        await db.close()


def heartbeat(user: int, content: int, *played: tuple[float, float], **fields) -> ProgressWrite:
    update = ProgressUpdate(content_id=content, played=list(played), **fields)
    return prepare(user, update, now=datetime.now(UTC))


async def stored_played(db: Database, user: int, content: int) -> tuple[tuple[float, float], ...]:
    async def read(conn: asyncpg.Connection) -> list[float]:
        return await conn.fetchval(
            "SELECT played FROM progress WHERE user_id = $1 AND content_id = $2", user, content
        )

    flat = await db.transaction(read) or []
    return tuple(zip(flat[::2], flat[1::2], strict=True))
