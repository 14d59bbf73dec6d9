"""The progress store against a real PostgreSQL: a batch that another writer overtakes merges
into the row rather than overwriting it, and the rows a writer remembers are checked again
where they must be."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest

from lms.domain.progress import Refusal, Refused, Written
from lms.store import bridge
from lms.store import progress as progress_store
from lms.store.database import Database
from proto.progress import ProgressWrite
from tests.progress_setup import (
    DURATION,
    LONG_AGO,
    Seeded,
    heartbeat,
    open_database,
    seed,
    stored_played,
)

# --- racing another writer ----------------------------------------------------------------------


class RacedConnection:
    """A real connection whose batch another writer overtakes: right after the batch's first
    statement (its read), or with `before` right before it (a batch of remembered rows writes
    first), `race` runs on a second connection."""

    def __init__(
        self, conn: asyncpg.Connection, race: Callable[[], Awaitable[object]], *, before=False
    ) -> None:
        self._conn = conn
        self._race: Callable[[], Awaitable[object]] | None = race
        self._before = before

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        if self._before:
            await self._run_race()
        rows = await self._conn.fetch(query, *args)
        await self._run_race()
        return rows

    async def _run_race(self) -> None:
        race, self._race = self._race, None
        if race is not None:
            await race()


@pytest.mark.parametrize("row_exists", [True, False], ids=["update", "insert"])
async def test_a_batch_overtaken_by_another_writer_merges_into_its_row(
    database_url: str, row_exists: bool
) -> None:
    """The second writer to a row finds it changed since it read it, writes nothing over it,
    reads again and merges: both writers' segments are kept, whoever wrote first. (Segments of
    10 s: a row's first heartbeat is credited 12 s at most.)"""
    async with bridge.open_bridge(), open_database(database_url, max_size=2) as db:
        course = await db.transaction(seed)
        learner, video = course.learners[0], course.videos[0]
        if row_exists:
            await db.connection(progress_store.apply_batch, [heartbeat(learner, video, (0, 10))])
        ahead = heartbeat(learner, video, (200, 210))  # taken first by the other node

        async def overtaken(conn: asyncpg.Connection) -> list[Written | Refused]:
            other = await asyncpg.connect(database_url)
            try:

                async def overtake() -> None:
                    await progress_store.apply_batch(other, [ahead])

                raced = RacedConnection(conn, overtake)
                return await progress_store.apply_batch(
                    raced, [heartbeat(learner, video, (100, 110))]
                )
            finally:
                await other.close()

        (outcome,) = await db.connection(overtaken)

        expected = ((0, 10), (100, 110), (200, 210)) if row_exists else ((100, 110), (200, 210))
        assert isinstance(outcome, Written)
        assert outcome.changed
        assert tuple(map(tuple, outcome.state.played)) == expected
        assert await stored_played(db, learner, video) == expected


async def test_a_batch_partly_overtaken_still_reports_the_change_it_stored_first(
    database_url: str,
) -> None:
    """The first round writes one row and loses the other to another writer; the second round
    finds the first row already as merged, but its sender must still hear that it changed."""
    async with bridge.open_bridge(), open_database(database_url, max_size=2) as db:
        course = await db.transaction(seed, learners=2, opened_at=LONG_AGO)
        (first, overtaken), video = course.learners, course.videos[0]
        for learner in course.learners:
            await db.connection(progress_store.apply_batch, [heartbeat(learner, video, (0, 30))])
        ahead = heartbeat(overtaken, video, (200, 230))  # taken first by the other node

        async def batch(conn: asyncpg.Connection) -> list[Written | Refused]:
            other = await asyncpg.connect(database_url)
            try:

                async def overtake() -> None:
                    await progress_store.apply_batch(other, [ahead])

                writes = [heartbeat(first, video, (30, 60)), heartbeat(overtaken, video, (30, 60))]
                return await progress_store.apply_batch(RacedConnection(conn, overtake), writes)
            finally:
                await other.close()

        outcomes = await db.connection(batch)

        assert [o.changed for o in outcomes if isinstance(o, Written)] == [True, True]
        assert await stored_played(db, first, video) == ((0, 60),)
        assert await stored_played(db, overtaken, video) == ((0, 60), (200, 230))


async def test_a_content_deleted_during_a_batch_refuses_only_its_writes(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url, max_size=2) as db:
        course = await db.transaction(seed, opened_at=LONG_AGO)
        learner, (gone, kept) = course.learners[0], course.videos

        async def batch(conn: asyncpg.Connection) -> list[Written | Refused]:
            other = await asyncpg.connect(database_url)
            try:

                async def delete() -> None:
                    await other.execute("DELETE FROM contents WHERE id = $1", gone)

                writes = [heartbeat(learner, gone, (0, 30)), heartbeat(learner, kept, (0, 30))]
                return await progress_store.apply_batch(RacedConnection(conn, delete), writes)
            finally:
                await other.close()

        refused, written = await db.connection(batch)

        assert isinstance(refused, Refused)
        assert refused.reason is Refusal.UNKNOWN_CONTENT
        assert isinstance(written, Written)
        assert await stored_played(db, learner, kept) == ((0, 30),)


# --- remembered rows ----------------------------------------------------------------------------


class CountedStatements:
    """A real connection that counts the statements run on it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.statements = 0

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        self.statements += 1
        return await self._conn.fetch(query, *args)


async def apply_counted(
    db: Database, rows: progress_store.ProgressRows, *writes: ProgressWrite
) -> tuple[list[Written | Refused], int]:
    """Apply `writes` as one batch through `rows`; its outcomes and how many statements ran."""

    async def counted(conn: asyncpg.Connection) -> tuple[list[Written | Refused], int]:
        counting = CountedStatements(conn)
        outcomes = await rows.apply_batch(counting, list(writes))
        return outcomes, counting.statements

    return await db.connection(counted)


async def test_steady_heartbeats_skip_reading_rows_the_writer_just_wrote(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=2, opened_at=LONG_AGO)
        (a, b), video = course.learners, course.videos[0]
        rows = progress_store.ProgressRows()
        _, statements = await apply_counted(db, rows, heartbeat(a, video, (0, 5)))
        assert statements == 2  # read, write
        outcomes, statements = await apply_counted(
            db, rows, heartbeat(a, video, (5, 10)), heartbeat(a, video, (10, 15))
        )
        assert statements == 1  # the write alone
        assert [o.state.played for o in outcomes if isinstance(o, Written)] == [
            [(0, 10)],
            [(0, 15)],
        ]
        # A learner it does not know yet is read; the known one still is not.
        _, statements = await apply_counted(
            db, rows, heartbeat(a, video, (15, 20)), heartbeat(b, video, (0, 5))
        )
        assert statements == 2
        assert await stored_played(db, a, video) == ((0, 20),)
        assert await stored_played(db, b, video) == ((0, 5),)


@asynccontextmanager
async def a_remembered_row(
    database_url: str,
) -> AsyncIterator[tuple[Database, Seeded, progress_store.ProgressRows]]:
    """A course whose first learner has played 0-30 s of its first video, written through (so
    remembered by) the `ProgressRows` yielded."""
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, opened_at=LONG_AGO)
        rows = progress_store.ProgressRows()
        await apply_counted(db, rows, heartbeat(course.learners[0], course.videos[0], (0, 30)))
        yield db, course, rows


async def execute(db: Database, query: str, *args: object) -> None:
    async def run(conn: asyncpg.Connection) -> None:
        await conn.execute(query, *args)

    await db.transaction(run)


async def test_a_remembered_row_written_by_another_node_since_is_merged_not_overwritten(
    database_url: str,
) -> None:
    async with a_remembered_row(database_url) as (db, course, here):
        learner, video = course.learners[0], course.videos[0]
        await db.connection(progress_store.apply_batch, [heartbeat(learner, video, (100, 130))])

        (outcome,), statements = await apply_counted(
            db, here, heartbeat(learner, video, (200, 230))
        )

        assert statements == 3  # the write finds the row moved on; read, merge, write again
        expected = ((0, 30), (100, 130), (200, 230))
        assert isinstance(outcome, Written)
        assert tuple(map(tuple, outcome.state.played)) == expected
        assert await stored_played(db, learner, video) == expected


async def test_a_remembered_row_written_meanwhile_by_a_batch_of_the_same_writer_is_merged(
    database_url: str,
) -> None:
    """Two batches through one memory at once: the one that writes second finds the version
    moved, reads and merges, and remembers the row as it now stands."""
    async with a_remembered_row(database_url) as (db, course, rows):
        learner, video = course.learners[0], course.videos[0]
        ahead = heartbeat(learner, video, (100, 130))  # taken first by the other batch

        async def overtaken(conn: asyncpg.Connection) -> list[Written | Refused]:
            other = await asyncpg.connect(database_url)
            try:

                async def overtake() -> None:
                    await rows.apply_batch(other, [ahead])

                raced = RacedConnection(conn, overtake, before=True)
                return await rows.apply_batch(raced, [heartbeat(learner, video, (200, 230))])
            finally:
                await other.close()

        (outcome,) = await db.connection(overtaken)

        expected = ((0, 30), (100, 130), (200, 230))
        assert isinstance(outcome, Written)
        assert tuple(map(tuple, outcome.state.played)) == expected
        assert await stored_played(db, learner, video) == expected
        _, statements = await apply_counted(db, rows, heartbeat(learner, video, (230, 260)))
        assert statements == 1


async def test_a_learner_unenrolled_since_their_row_was_remembered_is_refused(
    database_url: str,
) -> None:
    async with a_remembered_row(database_url) as (db, course, rows):
        learner, video = course.learners[0], course.videos[0]
        await execute(db, "DELETE FROM enrollments WHERE user_id = $1", learner)
        # A new segment (it would be written) and a repeat (it would change nothing).
        (new,), _ = await apply_counted(db, rows, heartbeat(learner, video, (30, 60)))
        (repeat,), _ = await apply_counted(db, rows, heartbeat(learner, video, (0, 30)))

        for outcome in (new, repeat):
            assert isinstance(outcome, Refused)
            assert outcome.reason is Refusal.NOT_ENROLLED
        assert await stored_played(db, learner, video) == ((0, 30),)


async def test_a_threshold_changed_since_a_row_was_remembered_completes_by_the_new_one(
    database_url: str,
) -> None:
    async with a_remembered_row(database_url) as (db, course, rows):
        learner, video = course.learners[0], course.videos[0]
        half = heartbeat(learner, video, (30, DURATION / 2))
        (before,), _ = await apply_counted(db, rows, half)
        await execute(
            db, "UPDATE courses SET completion_threshold = 0.5 WHERE id = $1", course.course_id
        )
        (after,), _ = await apply_counted(
            db, rows, heartbeat(learner, video, (DURATION / 2, DURATION / 2 + 10))
        )

        assert isinstance(before, Written)
        assert not before.state.completed
        assert isinstance(after, Written)
        assert after.state.completed


async def test_a_video_deleted_or_shortened_since_its_row_was_remembered_is_checked_again(
    database_url: str,
) -> None:
    async with a_remembered_row(database_url) as (db, course, rows):
        learner, (gone, shortened) = course.learners[0], course.videos
        await apply_counted(db, rows, heartbeat(learner, shortened, (0, 30)))
        await execute(db, "DELETE FROM contents WHERE id = $1", gone)
        await execute(db, "UPDATE contents SET duration_seconds = 60 WHERE id = $1", shortened)

        deleted, beyond, within = (
            await apply_counted(
                db,
                rows,
                heartbeat(learner, gone, (30, 60)),
                heartbeat(learner, shortened, (100, 130)),
                heartbeat(learner, shortened, (30, 40)),
            )
        )[0]

        assert isinstance(deleted, Refused)
        assert deleted.reason is Refusal.UNKNOWN_CONTENT
        assert isinstance(beyond, Refused)
        assert beyond.reason is Refusal.INVALID
        assert isinstance(within, Written)
        assert within.state.duration == 60
        assert await stored_played(db, learner, shortened) == ((0, 40),)


async def test_the_writer_remembers_only_its_most_recent_rows(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=3, opened_at=LONG_AGO)
        video = course.videos[0]
        rows = progress_store.ProgressRows(capacity=2)
        for learner in course.learners:
            await apply_counted(db, rows, heartbeat(learner, video, (0, 5)))
        recent = [
            (await apply_counted(db, rows, heartbeat(learner, video, (5, 10))))[1]
            for learner in reversed(course.learners)
        ]
        # The last two were remembered; the first was forgotten, read, and then remembered
        # in place of the next oldest.
        assert recent == [1, 1, 2]
        with pytest.raises(ValueError, match="capacity"):
            progress_store.ProgressRows(capacity=-1)
