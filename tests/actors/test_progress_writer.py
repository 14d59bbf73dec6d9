"""The progress writer against a real PostgreSQL, through the real store and bridge."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import asyncpg
import pytest
import trio
import trio.testing

from actors.progress_writer import (
    BatchFailed,
    ProgressWriter,
    ProgressWrites,
    Record,
    start_progress_writer,
)
from actors.runtime import Supervisor, open_mailbox
from lms.domain.progress import GAP, Refusal, Refused, Written, prepare, union
from lms.store import bridge
from lms.store import progress as progress_store
from lms.store.database import Database
from proto.events import Event, ProgressChanged
from proto.progress import ProgressUpdate, ProgressWrite

DURATION = 3600.0
TIMEOUT = 10.0


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


class CountedCommit:
    """The node's commit (one atomic write per batch, remembering rows), counting the batches
    it commits and the most committing at once. With `hold_first`, the first batch waits for
    `release` before it reaches the database."""

    def __init__(self, db: Database, *, hold_first: bool = False) -> None:
        self.db = db
        self.rows = progress_store.ProgressRows()
        self.transactions = 0
        self.committing = 0
        self.most_at_once = 0
        self.release = trio.Event()
        if not hold_first:
            self.release.set()

    async def __call__(self, writes: list[ProgressWrite]) -> list[Written | Refused]:
        self.transactions += 1
        self.committing += 1
        self.most_at_once = max(self.most_at_once, self.committing)
        try:
            if self.transactions == 1:
                await self.release.wait()
            return await self.db.kept_connection(self.rows.apply_batch, writes)
        finally:
            self.committing -= 1


async def ignore(event: Event) -> None:
    pass


@asynccontextmanager
async def running_writer(
    commit: Callable[[list[ProgressWrite]], Awaitable[list[Written | Refused]]],
    publish: Callable[[Event], Awaitable[None]] = ignore,
    **options: float,
) -> AsyncIterator[ProgressWrites]:
    """A writer under its own supervisor, stopped (cancelled) when the block ends."""
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor("test")
        await nursery.start(supervisor.run)
        yield await start_progress_writer(supervisor, commit, publish, **options)
        nursery.cancel_scope.cancel()


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


# --- group commit -------------------------------------------------------------------------------


async def test_many_concurrent_updates_share_a_few_transactions(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=50, videos=10)
        commit = CountedCommit(db)
        async with running_writer(commit, max_batch=200) as writes:
            answers: list[Written | Refused] = []

            async def send(user: int, content: int) -> None:
                answers.append(
                    await writes.record(heartbeat(user, content, (0, 30)), timeout=TIMEOUT)
                )

            async with trio.open_nursery() as nursery:
                for user, content in itertools.product(course.learners, course.videos):
                    nursery.start_soon(send, user, content)
            stats = writes.statistics()

        assert len(answers) == 500
        assert all(isinstance(a, Written) and a.state.watched_seconds == 30 for a in answers)
        assert commit.transactions <= 5, commit.transactions
        assert (stats.batches, stats.updates) == (commit.transactions, 500)
        assert stats.largest_batch == 200  # the batch size cap
        assert stats.mean_batch_size == 500 / commit.transactions
        assert stats.mailbox.depth == 0

        async def rows(conn: asyncpg.Connection) -> int:
            return await conn.fetchval("SELECT count(*) FROM progress WHERE watched_seconds = 30")

        assert await db.transaction(rows) == 500


async def test_updates_arriving_right_after_a_commit_began_share_the_next_one(
    database_url: str,
) -> None:
    """At light load each heartbeat would pay a whole transaction: a batch starts at most every
    `gather` seconds, so the updates that arrive in between wait and commit together."""
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=3)
        commit = CountedCommit(db)
        async with running_writer(commit, gather=0.5) as writes:
            answers: list[Written | Refused] = []

            async def send(user: int) -> None:
                write = heartbeat(user, course.videos[0], (0, 30))
                answers.append(await writes.record(write, timeout=TIMEOUT))

            await send(course.learners[0])  # an idle writer takes it at once
            assert commit.transactions == 1
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, course.learners[1])
                # Everything is parked: the writer holds the update, not yet committing it.
                await trio.testing.wait_all_tasks_blocked()
                assert commit.transactions == 1
                nursery.start_soon(send, course.learners[2])

        assert len(answers) == 3
        assert all(isinstance(a, Written) for a in answers)
        assert commit.transactions == 2
        assert writes.statistics().largest_batch == 2


async def test_a_batch_with_enough_updates_waiting_starts_without_waiting_out_the_window(
    database_url: str,
) -> None:
    """A burst (or players each waiting on their answer) must not be held to one batch per
    `gather`: once `enough` updates wait, the batch starts."""
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=4)
        commit = CountedCommit(db)
        async with running_writer(commit, gather=3600, enough=3) as writes:

            async def send(user: int) -> None:
                write = heartbeat(user, course.videos[0], (0, 30))
                assert isinstance(await writes.record(write, timeout=TIMEOUT), Written)

            await send(course.learners[0])  # an idle writer takes it at once
            with trio.fail_after(TIMEOUT):  # not an hour later
                async with trio.open_nursery() as nursery:
                    for user in course.learners[1:]:
                        nursery.start_soon(send, user)

        assert commit.transactions == 2
        assert writes.statistics().largest_batch == 3


async def test_a_batch_of_other_rows_commits_while_one_waits_on_the_database(
    database_url: str,
) -> None:
    """A batch's commit is mostly waiting on PostgreSQL: the next batch does not wait for it."""
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=2)
        (held, other), video = course.learners, course.videos[0]
        commit = CountedCommit(db, hold_first=True)
        async with running_writer(commit, gather=0) as writes, trio.open_nursery() as nursery:
            answered: list[int] = []

            async def send(user: int) -> None:
                write = heartbeat(user, video, (0, 30))
                assert isinstance(await writes.record(write, timeout=TIMEOUT), Written)
                answered.append(user)

            nursery.start_soon(send, held)
            await trio.testing.wait_all_tasks_blocked()
            await send(other)
            assert answered == [other]  # committed while the first batch is still held
            commit.release.set()

        assert answered == [other, held]
        assert commit.most_at_once == 2
        assert await stored_played(db, held, video) == ((0, 30),)


async def test_writes_to_one_row_commit_in_the_order_sent_even_with_batches_in_flight(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed)
        learner, video = course.learners[0], course.videos[0]
        commit = CountedCommit(db, hold_first=True)
        async with running_writer(commit, gather=0) as writes, trio.open_nursery() as nursery:
            answers: list[Written | Refused] = []

            async def send(*played: tuple[float, float]) -> None:
                write = heartbeat(learner, video, *played)
                answers.append(await writes.record(write, timeout=TIMEOUT))

            nursery.start_soon(send, (0, 30))
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(send, (30, 60))
            await trio.testing.wait_all_tasks_blocked()
            assert commit.transactions == 1  # the second batch waits for the row's first
            commit.release.set()

        assert [a.state.played for a in answers if isinstance(a, Written)] == [
            [(0, 30)],
            [(0, 60)],
        ]
        assert commit.most_at_once == 1
        assert await stored_played(db, learner, video) == ((0, 60),)


async def test_a_burst_is_shared_evenly_by_batches_committing_at_once(database_url: str) -> None:
    """Players waiting on their answers would otherwise all ride one batch, and the writer would
    sit idle while it commits; a light load is not split (see the gather test above)."""
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=6)
        commit = CountedCommit(db, hold_first=True)
        async with running_writer(commit, gather=3600, enough=3) as writes:

            async def send(user: int) -> None:
                write = heartbeat(user, course.videos[0], (0, 30))
                assert isinstance(await writes.record(write, timeout=TIMEOUT), Written)

            async with trio.open_nursery() as nursery:
                for user in course.learners:
                    nursery.start_soon(send, user)
                await trio.testing.wait_all_tasks_blocked()
                assert commit.transactions == 2  # the second committing beside the held one
                commit.release.set()

        stats = writes.statistics()
        assert (stats.batches, stats.largest_batch) == (2, 3)
        assert commit.most_at_once == 2


def test_a_writer_refuses_settings_under_which_batches_could_not_form() -> None:
    _address, inbox = open_mailbox[Record](8, "writer")

    async def commit(writes: list[ProgressWrite]) -> list[Written | Refused]:
        raise AssertionError("never called")

    bad: list[dict[str, float]] = [
        {"max_batch": 0},
        {"enough": 0},
        {"max_batch": 16, "enough": 17},
        {"in_flight": 0},
        {"gather": -0.01},
        {"gather": float("nan")},
    ]
    for options in bad:
        with pytest.raises(ValueError, match="must be"):
            ProgressWriter(inbox, commit, ignore, **options)  # type: ignore[arg-type]


async def test_a_refused_write_does_not_fail_the_rest_of_its_batch(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed)
        learner, video = course.learners[0], course.videos[0]
        cases = {
            "ok": heartbeat(learner, video, (0, 10), position=10.0),
            "unknown": heartbeat(learner, 999_999, (0, 10)),
            "outsider": heartbeat(course.outsider, video, (0, 10)),
            "unprocessed": heartbeat(learner, course.unprocessed, (0, 10)),
            "beyond": heartbeat(learner, video, (0, DURATION + 60)),
            "text": heartbeat(learner, course.text, completed=True),
            "also ok": heartbeat(course.learners[1], video, (5, 20)),
        }
        async with running_writer(CountedCommit(db)) as writes:
            answers: dict[str, Written | Refused] = {}

            async def send(name: str, write: ProgressWrite) -> None:
                answers[name] = await writes.record(write, timeout=TIMEOUT)

            async with trio.open_nursery() as nursery:
                for name, write in cases.items():
                    nursery.start_soon(send, name, write)
            assert writes.statistics().largest_batch == len(cases)  # all in one transaction

        refusals = {n: a.reason for n, a in answers.items() if isinstance(a, Refused)}
        assert refusals == {
            "unknown": Refusal.UNKNOWN_CONTENT,
            "outsider": Refusal.NOT_ENROLLED,
            "unprocessed": Refusal.NOT_READY,
            "beyond": Refusal.INVALID,
        }
        assert await stored_played(db, learner, video) == ((0, 10),)
        assert await stored_played(db, course.learners[1], video) == ((5, 20),)
        text = answers["text"]
        assert isinstance(text, Written)
        assert text.state.completed
        assert await stored_played(db, course.outsider, video) == ()


# --- durability and concurrency -----------------------------------------------------------------


async def test_acknowledged_updates_survive_a_hard_stop_and_a_new_writer(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=20, videos=1)
        video = course.videos[0]
        acknowledged: dict[int, list[tuple[float, float]]] = {u: [] for u in course.learners}
        enough = trio.Event()

        async def play(writes: ProgressWrites, user: int) -> None:
            for second in itertools.count(step=2):
                segment = (float(second), second + 1.0)
                await writes.record(heartbeat(user, video, segment), timeout=TIMEOUT)
                acknowledged[user].append(segment)
                if sum(map(len, acknowledged.values())) >= 400:
                    enough.set()

        # Cancel the writer and every player at once, mid-traffic: some asks are queued, one
        # batch may be committing. Nothing acknowledged may be missing afterwards.
        async with running_writer(CountedCommit(db)) as writes, trio.open_nursery() as players:
            for user in course.learners:
                players.start_soon(play, writes, user)
            await enough.wait()
            players.cancel_scope.cancel()

        for user, segments in acknowledged.items():
            stored = await stored_played(db, user, video)
            assert union(stored, segments) == stored, user

        # A new writer (a restarted node) carries on from what is stored.
        user = course.learners[0]
        async with running_writer(CountedCommit(db)) as writes:
            answer = await writes.record(heartbeat(user, video, (0.5, 1.5)), timeout=TIMEOUT)
        assert isinstance(answer, Written)
        assert answer.state.played[0] == (0.0, 1.5)


async def test_what_is_stored_is_exactly_what_was_answered(database_url: str) -> None:
    # Floats that no short decimal spells and a time with microseconds: the row travels to
    # PostgreSQL as text, and must come back as the very values the learner was told.
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=1, videos=1)
        user, video = course.learners[0], course.videos[0]
        sent_at = datetime(2026, 12, 3, 14, 0, 0, 123457, tzinfo=UTC)
        update = ProgressUpdate(
            content_id=video,
            position=0.1 + 0.2,
            played=[(1 / 3, 2 / 3), (10.1, DURATION - 1e-12)],
            client_ts=sent_at,
        )
        write = prepare(user, update, now=datetime.now(UTC))
        async with running_writer(CountedCommit(db)) as writes:
            answer = await writes.record(write, timeout=TIMEOUT)
        assert isinstance(answer, Written)

        async def read(conn: asyncpg.Connection) -> asyncpg.Record:
            return await conn.fetchrow(
                "SELECT position, position_at, played, watched_seconds, updated_at"
                " FROM progress WHERE user_id = $1 AND content_id = $2",
                user,
                video,
            )

        row = await db.transaction(read)
        assert row["position"] == answer.state.position == 0.1 + 0.2
        assert row["position_at"] == sent_at
        assert await stored_played(db, user, video) == tuple(answer.state.played)
        assert row["watched_seconds"] == answer.state.watched_seconds
        assert row["updated_at"] == answer.state.updated_at


async def test_two_writers_on_one_database_merge_the_same_rows(database_url: str) -> None:
    async with (
        bridge.open_bridge(),
        open_database(database_url) as db_a,
        open_database(database_url) as db_b,
    ):
        course = await db_a.transaction(seed, learners=3, videos=2)
        keys = list(itertools.product(course.learners, course.videos))
        # Disjoint one-second segments, far enough apart that no gap closes: the stored union
        # holds every one of them only if neither writer overwrote the other's.
        segments = [(i * 3.0, i * 3.0 + 1.0) for i in range(60)]
        assert GAP < 3.0 - 1.0
        async with (
            running_writer(CountedCommit(db_a)) as a,
            running_writer(CountedCommit(db_b)) as b,
        ):

            async def play(writes: ProgressWrites, user: int, content: int, parity: int) -> None:
                for segment in segments[parity::2]:
                    await writes.record(heartbeat(user, content, segment), timeout=TIMEOUT)

            # Each row gets its even segments through one writer and its odd ones through the
            # other, one after another, so the two writers' batches keep overlapping: first
            # racing to create the rows, then updating rows the other has just written.
            async with trio.open_nursery() as nursery:
                for user, content in keys:
                    nursery.start_soon(play, a, user, content, 0)
                    nursery.start_soon(play, b, user, content, 1)
            assert a.statistics().updates == b.statistics().updates == 30 * len(keys)

        for user, content in keys:
            assert await stored_played(db_a, user, content) == tuple(segments)


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
    reads again and merges: both writers' segments are kept, whoever wrote first."""
    async with bridge.open_bridge(), open_database(database_url, max_size=2) as db:
        course = await db.transaction(seed)
        learner, video = course.learners[0], course.videos[0]
        if row_exists:
            await db.connection(progress_store.apply_batch, [heartbeat(learner, video, (0, 30))])

        async def overtaken(conn: asyncpg.Connection) -> list[Written | Refused]:
            other = await asyncpg.connect(database_url)
            try:

                async def overtake() -> None:
                    await progress_store.apply_batch(other, [heartbeat(learner, video, (200, 230))])

                raced = RacedConnection(conn, overtake)
                return await progress_store.apply_batch(
                    raced, [heartbeat(learner, video, (100, 130))]
                )
            finally:
                await other.close()

        (outcome,) = await db.connection(overtaken)

        expected = ((0, 30), (100, 130), (200, 230)) if row_exists else ((100, 130), (200, 230))
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
        course = await db.transaction(seed, learners=2)
        (first, overtaken), video = course.learners, course.videos[0]
        for learner in course.learners:
            await db.connection(progress_store.apply_batch, [heartbeat(learner, video, (0, 30))])

        async def batch(conn: asyncpg.Connection) -> list[Written | Refused]:
            other = await asyncpg.connect(database_url)
            try:

                async def overtake() -> None:
                    later = heartbeat(overtaken, video, (200, 230))
                    await progress_store.apply_batch(other, [later])

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
        course = await db.transaction(seed)
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
        course = await db.transaction(seed, learners=2)
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
        course = await db.transaction(seed)
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

        async def overtaken(conn: asyncpg.Connection) -> list[Written | Refused]:
            other = await asyncpg.connect(database_url)
            try:

                async def overtake() -> None:
                    await rows.apply_batch(other, [heartbeat(learner, video, (100, 130))])

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
        course = await db.transaction(seed, learners=3)
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


# --- failures and events ------------------------------------------------------------------------


async def test_a_failed_batch_fails_its_askers_and_the_writer_goes_on(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed)
        real = CountedCommit(db)
        failures = [ConnectionError("database went away")]

        async def flaky(writes: list[ProgressWrite]) -> list[Written | Refused]:
            if failures:
                raise failures.pop()
            return await real(writes)

        learner, video = course.learners[0], course.videos[0]
        async with running_writer(flaky) as writes:
            with pytest.raises(BatchFailed) as failed:
                await writes.record(heartbeat(learner, video, (0, 10)), timeout=TIMEOUT)
            assert isinstance(failed.value.__cause__, ConnectionError)
            answer = await writes.record(heartbeat(learner, video, (20, 30)), timeout=TIMEOUT)
            assert writes.statistics().failed_batches == 1
        assert isinstance(answer, Written)
        assert await stored_played(db, learner, video) == ((20, 30),)


async def test_each_changed_row_is_published_once_after_its_commit(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed)
        learner, video = course.learners[0], course.videos[0]
        send, published = trio.open_memory_channel[tuple[Event, tuple]](10)

        async def publish(event: Event) -> None:
            assert isinstance(event, ProgressChanged)
            # Published after the commit: the row is already there for anyone to read.
            send.send_nowait((event, await stored_played(db, event.user_id, event.content_id)))

        async with running_writer(CountedCommit(db), publish) as writes:
            async with trio.open_nursery() as nursery:
                for segment in [(0, 10), (10, 20), (20, 30)]:
                    write = heartbeat(learner, video, segment, position=segment[1])
                    nursery.start_soon(partial(writes.record, write, timeout=TIMEOUT))
            assert writes.statistics().batches == 1
            # A paused player: the same position again, and an already played segment.
            paused = heartbeat(learner, video, (5, 15), position=30.0)
            answer = await writes.record(paused, timeout=TIMEOUT)
            assert isinstance(answer, Written)
            assert not answer.changed
            moved = await writes.record(heartbeat(learner, video, position=12.0), timeout=TIMEOUT)
            assert isinstance(moved, Written)
            assert moved.changed
            with trio.fail_after(5):
                events = [await published.receive() for _ in range(2)]
            with pytest.raises(trio.WouldBlock):
                published.receive_nowait()

        assert [(e.position, e.played) for e, _ in events] == [(30, [(0, 30)]), (12, [(0, 30)])]
        assert all(stored == ((0, 30),) for _, stored in events)


async def test_a_stuck_event_sink_holds_the_writer_only_for_its_budget(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed)
        learner, video = course.learners[0], course.videos[0]

        async def stuck(event: Event) -> None:
            await trio.sleep_forever()

        async with running_writer(CountedCommit(db), stuck, publish_budget=0.2) as writes:
            with trio.fail_after(5):
                for second in range(4):
                    write = heartbeat(learner, video, (second * 10.0, second * 10.0 + 5))
                    assert isinstance(await writes.record(write, timeout=TIMEOUT), Written)
            # The fourth answer came once the third batch's events had been given up on.
            stats = writes.statistics()
        assert (stats.events_published, stats.events_dropped) == (0, 3)
