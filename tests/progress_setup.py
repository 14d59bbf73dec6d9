"""A course for the progress writer and store tests (and the progress benchmark): enrolled
learners, videos of a known duration, a text, a video still processing and an outsider; and
heartbeats to record in it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from lms.domain.progress import prepare
from lms.store.database import Database
from proto.progress import ProgressUpdate, ProgressWrite

DURATION = 3600.0
# Long before any test's clock: every heartbeat since is within its learner's allowance
# (lms/domain/progress.py `credit`).
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Seeded:
    """A course with enrolled learners, videos of `DURATION` seconds, a text and an outsider."""

    course_id: int
    learners: list[int]
    videos: list[int]
    text: int
    unprocessed: int  # a video whose duration is not known yet
    outsider: int  # a user not enrolled


async def seed(
    conn: asyncpg.Connection,
    learners: int = 3,
    videos: int = 2,
    *,
    opened_at: datetime | None = None,
    max_playback_rate: float = 2.0,
) -> Seeded:
    """With `opened_at`, every learner opened every video then (an empty progress row credited
    then), so what they claim since is credited up to the course's rate times the time since:
    for the tests of merging, racing and batching, which are not about the rate.
    `max_playback_rate` is the course's (at 16x, 96 s of video are credited at once)."""

    async def user(name: str) -> int:
        return await conn.fetchval(
            "INSERT INTO users (email, name, password_hash) VALUES ($1, $1, 'x') RETURNING id",
            f"{name}@bench.lms",
        )

    owner = await user("owner")
    course = await conn.fetchval(
        """
        INSERT INTO courses (owner_id, title, max_playback_rate) VALUES ($1, 'Optics', $2)
        RETURNING id
        """,
        owner,
        max_playback_rate,
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
    if opened_at is not None:
        await conn.execute(
            """
            INSERT INTO progress (user_id, content_id, course_id, credited_at)
            SELECT u, c, $3, $4::timestamptz
            FROM unnest($1::bigint[]) AS u, unnest($2::bigint[]) AS c
            """,
            learner_ids,
            video_ids,
            course,
            opened_at,
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


def heartbeat(
    user: int,
    content: int,
    *played: tuple[float, float],
    at: datetime | None = None,
    **fields,
) -> ProgressWrite:
    """A heartbeat as the service stamps it, received `at`, by default an hour after the one
    made before it: these tests send many at once and are not about how fast playback is
    credited (at 2x an hour credits two, more than a video; lms/domain/progress.py `credit`).

    A heartbeat is credited at the time it was received, so one received before the last that
    was credited credits nothing: heartbeats sent from tasks that may run in any order take
    one time, `at=next_hour()`, and a course whose rate credits them all at once."""
    update = ProgressUpdate(content_id=content, played=list(played), **fields)
    return prepare(user, update, now=next_hour() if at is None else at)


def next_hour() -> datetime:
    """The time of the next heartbeat made without `at`, taken: an hour after the last."""
    return _RECEIVED + next(_hours) * timedelta(hours=1)


_RECEIVED = datetime.now(UTC)
_hours = itertools.count()


async def stored_played(db: Database, user: int, content: int) -> tuple[tuple[float, float], ...]:
    async def read(conn: asyncpg.Connection) -> list[float]:
        return await conn.fetchval(
            "SELECT played FROM progress WHERE user_id = $1 AND content_id = $2", user, content
        )

    flat = await db.transaction(read) or []
    return tuple(zip(flat[::2], flat[1::2], strict=True))
