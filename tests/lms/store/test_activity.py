"""Activity history against a real PostgreSQL: the progress writer credits each learner's
UTC hour with what its statement newly added (a replay adds nothing, a completion counts once,
racing writers sum to the rows' totals), and the reads the dashboards make."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import asyncpg
import trio

from lms.domain.progress import Refused, Written
from lms.store import activity, bridge
from lms.store import progress as progress_store
from lms.store.activity import HourActivity
from lms.store.database import Database
from proto.progress import ProgressWrite
from tests.lms.store.test_progress import RacedConnection
from tests.progress_setup import DURATION, LONG_AGO, heartbeat, open_database, seed

T = datetime(2026, 3, 28, 10, 0, tzinfo=UTC)  # an hour's start
HOUR = timedelta(hours=1)

Credit = dict[tuple[int, int, datetime], tuple[float, int]]


class Clock:
    """The writer's clock, set by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def apply(
    db: Database, rows: progress_store.ProgressRows, *writes: ProgressWrite
) -> list[Written | Refused]:
    return await db.connection(rows.apply_batch, list(writes))


async def credited(db: Database) -> Credit:
    """Every activity row: (user, content, hour) -> (watched seconds, completions)."""

    async def read(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch("SELECT * FROM activity_hourly")

    return {
        (r["user_id"], r["content_id"], r["hour"]): (r["watched_seconds"], r["completions"])
        for r in await db.connection(read)
    }


async def progress_totals(db: Database) -> dict[tuple[int, int], tuple[float, int]]:
    """Every progress row credited something: (user, content) -> (watched seconds, 1 if
    completed else 0). (The rows `seed` opened and nobody watched are left out.)"""

    async def read(conn: asyncpg.Connection) -> list[asyncpg.Record]:
        return await conn.fetch(
            "SELECT * FROM progress WHERE watched_seconds > 0 OR completed_at IS NOT NULL"
        )

    return {
        (r["user_id"], r["content_id"]): (r["watched_seconds"], int(r["completed_at"] is not None))
        for r in await db.connection(read)
    }


def summed(credit: Credit) -> dict[tuple[int, int], tuple[float, int]]:
    """The activity rows summed over hours, per (user, content)."""
    sums: dict[tuple[int, int], tuple[float, int]] = {}
    for (user, content, _), (watched, completions) in credit.items():
        before = sums.get((user, content), (0.0, 0))
        sums[(user, content)] = (before[0] + watched, before[1] + completions)
    return sums


async def test_heartbeats_are_credited_to_their_learner_content_and_utc_hour(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=2, opened_at=LONG_AGO)
        (a, b), (v1, v2) = course.learners, course.videos
        clock = Clock(T + timedelta(minutes=59, seconds=50))
        rows = progress_store.ProgressRows(clock=clock)

        await apply(
            db,
            rows,
            heartbeat(a, v1, (0, 30)),
            heartbeat(a, v2, (0, 10)),
            heartbeat(b, v1, (0, 5)),
        )
        clock.now = T + HOUR + timedelta(seconds=10)
        await apply(
            db,
            rows,
            heartbeat(a, v1, (20, 60)),  # 30 s of it new
            heartbeat(a, v2, (0, 10)),  # a repeat
        )

        assert await credited(db) == {
            (a, v1, T): (30.0, 0),
            (a, v2, T): (10.0, 0),
            (b, v1, T): (5.0, 0),
            (a, v1, T + HOUR): (30.0, 0),
        }
        assert summed(await credited(db)) == await progress_totals(db)
        assert await db.connection(activity.user_activity, a, T, T + 2 * HOUR) == [
            HourActivity(T, 40.0, 0),
            HourActivity(T + HOUR, 30.0, 0),
        ]
        assert await db.connection(activity.course_activity, course.course_id, T, T + 2 * HOUR) == [
            HourActivity(T, 45.0, 0),
            HourActivity(T + HOUR, 30.0, 0),
        ]


async def test_a_replayed_heartbeat_or_a_paused_players_position_adds_nothing(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, opened_at=LONG_AGO)
        learner, video = course.learners[0], course.videos[0]
        rows = progress_store.ProgressRows(clock=Clock(T))
        sent = heartbeat(learner, video, (0, 30), position=30)
        await apply(db, rows, sent, sent)  # sent twice in one batch
        # Again later, through a writer that does not remember the row (another node), and
        # a paused player's heartbeat: it restamps the position, so the row is written.
        other = progress_store.ProgressRows(capacity=0, clock=Clock(T + HOUR))
        again = await apply(db, other, sent, heartbeat(learner, video, position=30))

        assert [isinstance(o, Written) and o.changed for o in again] == [False, False]
        assert await credited(db) == {(learner, video, T): (30.0, 0)}

        async def version(conn: asyncpg.Connection) -> int:
            return await conn.fetchval(
                "SELECT version FROM progress WHERE user_id = $1 AND content_id = $2",
                learner,
                video,
            )

        # Opened by `seed` (0), written once (1), then the restamp was written, and credited 0.
        assert await db.connection(version) == 2


async def test_a_completion_counts_once_in_the_hour_it_happened(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, opened_at=LONG_AGO)
        learner, video, text = course.learners[0], course.videos[0], course.text
        clock = Clock(T)
        rows = progress_store.ProgressRows(clock=clock)
        await apply(db, rows, heartbeat(learner, video, (0, 1800)))
        clock.now = T + HOUR
        await apply(
            db,
            rows,
            heartbeat(learner, video, (1800, 3420)),  # 0.95 of it, past 0.9: completes
            heartbeat(learner, text, completed=True),
        )
        clock.now = T + 2 * HOUR
        await apply(
            db,
            rows,
            heartbeat(learner, video, (3420, DURATION)),
            heartbeat(learner, text, completed=True),
        )
        # Another node, which remembers nothing, sends the completing heartbeat again.
        again = progress_store.ProgressRows(capacity=0, clock=Clock(T + 3 * HOUR))
        await apply(db, again, heartbeat(learner, video, (0, DURATION)))

        assert await credited(db) == {
            (learner, video, T): (1800.0, 0),
            (learner, video, T + HOUR): (1620.0, 1),
            (learner, text, T + HOUR): (0.0, 1),
            (learner, video, T + 2 * HOUR): (DURATION - 3420, 0),
        }
        assert summed(await credited(db)) == await progress_totals(db)


async def test_a_batch_overtaken_by_another_writer_credits_only_what_it_added(
    database_url: str,
) -> None:
    """The second writer to a row reads it again and merges: it credits what its segments add
    beyond the first writer's, not beyond what it had read."""
    async with bridge.open_bridge(), open_database(database_url, max_size=2) as db:
        course = await db.transaction(seed, opened_at=LONG_AGO)
        learner, video = course.learners[0], course.videos[0]
        rows = progress_store.ProgressRows(clock=Clock(T))
        await apply(db, rows, heartbeat(learner, video, (0, 30)))
        ahead = heartbeat(learner, video, (0, 100))  # taken first by the other node

        async def overtaken(conn: asyncpg.Connection) -> list[Written | Refused]:
            other = await asyncpg.connect(database_url)
            try:

                async def overtake() -> None:
                    await progress_store.ProgressRows(clock=Clock(T)).apply_batch(other, [ahead])

                return await rows.apply_batch(
                    RacedConnection(conn, overtake, before=True),
                    [heartbeat(learner, video, (50, 130))],
                )
            finally:
                await other.close()

        await db.connection(overtaken)

        assert await credited(db) == {(learner, video, T): (130.0, 0)}


async def test_concurrent_batches_on_the_same_rows_sum_to_the_rows_totals(
    database_url: str,
) -> None:
    """Writers on several connections (nodes) send overlapping segments of the same rows at
    once, and completions: each row's hours add up to its watched time, each completion once."""
    writers, batches = 6, 8
    async with bridge.open_bridge(), open_database(database_url, max_size=writers) as db:
        course = await db.transaction(seed, learners=3, opened_at=LONG_AGO)

        async def writer(index: int) -> None:
            rows = progress_store.ProgressRows(clock=Clock(T + index % 2 * HOUR))
            for step in range(batches):
                start = step * 40.0 + index * 10.0
                writes = [
                    heartbeat(learner, video, (start, start + 30))
                    for learner in course.learners
                    for video in course.videos
                ]
                writes += [
                    heartbeat(learner, course.text, completed=True) for learner in course.learners
                ]
                await apply(db, rows, *writes)

        async with trio.open_nursery() as nursery:
            for index in range(writers):
                nursery.start_soon(writer, index)

        totals = await progress_totals(db)
        sums = summed(await credited(db))
        assert sums.keys() == totals.keys()
        assert len(totals) == len(course.learners) * (len(course.videos) + 1)
        for key, (watched, completions) in totals.items():
            assert math.isclose(sums[key][0], watched, abs_tol=1e-9), key
            assert sums[key][1] == completions, key
        assert sum(completions for _, completions in sums.values()) == len(course.learners)


async def test_active_users_count_each_learner_once_per_window_in_a_course_or_anywhere(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=3, opened_at=LONG_AGO)
        (a, b, c), video = course.learners, course.videos[0]
        other_course, other_video = await db.transaction(another_course, [c])

        async def active_at(when: datetime, *writes: ProgressWrite) -> None:
            await apply(db, progress_store.ProgressRows(clock=Clock(when)), *writes)

        now = T + timedelta(minutes=30)
        await active_at(T - 2 * HOUR, heartbeat(a, video, (0, 10)))
        await active_at(T - timedelta(days=3), heartbeat(a, video, (10, 20)))
        await active_at(T - timedelta(days=10), heartbeat(b, video, (0, 10)))
        await active_at(T - timedelta(days=40), heartbeat(c, video, (0, 10)))
        await active_at(T, heartbeat(c, other_video, (0, 10)))  # this hour, in the other course

        windows = [now - timedelta(days=1), now - timedelta(days=7), now - timedelta(days=30)]
        in_course = await db.connection(activity.active_users, windows, course_id=course.course_id)
        assert in_course == [1, 1, 2]
        assert await db.connection(activity.active_users, windows) == [2, 2, 3]
        assert await db.connection(activity.active_users, [now], course_id=other_course) == [1]
        assert await db.connection(activity.active_users, [now + HOUR]) == [0]
        assert await db.connection(activity.active_users, []) == []


async def test_a_range_takes_the_hours_that_overlap_it(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, opened_at=LONG_AGO)
        learner, video = course.learners[0], course.videos[0]
        for hour, segment in enumerate([(0, 10), (10, 30), (30, 60)]):
            rows = progress_store.ProgressRows(clock=Clock(T + hour * HOUR))
            await apply(db, rows, heartbeat(learner, video, segment))

        half = timedelta(minutes=30)
        assert await db.connection(activity.user_activity, learner, T + half, T + HOUR + half) == [
            HourActivity(T, 10.0, 0),
            HourActivity(T + HOUR, 20.0, 0),
        ]
        assert await db.connection(
            activity.course_activity, course.course_id, T + HOUR, T + 3 * HOUR
        ) == [HourActivity(T + HOUR, 20.0, 0), HourActivity(T + 2 * HOUR, 30.0, 0)]
        assert (
            await db.connection(activity.user_activity, learner, T + 3 * HOUR, T + 9 * HOUR) == []
        )
        assert await db.connection(activity.user_activity, course.outsider, T, T + 3 * HOUR) == []


async def another_course(conn: asyncpg.Connection, learners: list[int]) -> tuple[int, int]:
    """A second course with one video, `learners` enrolled: (course id, video id)."""
    course = await conn.fetchval(
        "INSERT INTO courses (owner_id, title) SELECT $1, 'Acoustics' RETURNING id", learners[0]
    )
    video = await conn.fetchval(
        """
        INSERT INTO contents (course_id, title, kind, position, duration_seconds)
        VALUES ($1, 'Waves', 'video', 0, $2) RETURNING id
        """,
        course,
        DURATION,
    )
    await conn.executemany(
        "INSERT INTO enrollments (course_id, user_id) VALUES ($1, $2)",
        [(course, learner) for learner in learners],
    )
    return course, video
