"""The progress writer against a real PostgreSQL, through the real store and bridge."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

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
from tests.progress_setup import (
    DURATION,
    LONG_AGO,
    heartbeat,
    next_hour,
    open_database,
    seed,
    stored_played,
)

TIMEOUT = 10.0


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
    **options: Any,
) -> AsyncIterator[ProgressWrites]:
    """A writer under its own supervisor, stopped (cancelled) when the block ends."""
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor("test")
        await nursery.start(supervisor.run)
        yield await start_progress_writer(supervisor, commit, publish, **options)
        nursery.cancel_scope.cancel()


# --- group commit -------------------------------------------------------------------------------


async def test_many_concurrent_updates_share_a_few_transactions(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=50, videos=10, opened_at=LONG_AGO)
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
        course = await db.transaction(seed, learners=3, opened_at=LONG_AGO)
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
        course = await db.transaction(seed, learners=4, opened_at=LONG_AGO)
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
        course = await db.transaction(seed, learners=2, opened_at=LONG_AGO)
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
        course = await db.transaction(seed, opened_at=LONG_AGO)
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
        course = await db.transaction(seed, learners=6, opened_at=LONG_AGO)
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
        course = await db.transaction(seed, opened_at=LONG_AGO)
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
        course = await db.transaction(seed, learners=20, videos=1, opened_at=LONG_AGO)
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
        course = await db.transaction(seed, learners=1, videos=1, opened_at=LONG_AGO)
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
        course = await db_a.transaction(
            seed, learners=3, videos=2, opened_at=LONG_AGO, max_playback_rate=16.0
        )
        keys = list(itertools.product(course.learners, course.videos))
        # Disjoint one-second segments, far enough apart that no gap closes: the stored union
        # holds every one of them only if neither writer overwrote the other's. All received at
        # once: the two writers commit them in any order, and 60 s at 16x is one grace.
        segments = [(i * 3.0, i * 3.0 + 1.0) for i in range(60)]
        at = next_hour()
        assert GAP < 3.0 - 1.0
        async with (
            running_writer(CountedCommit(db_a)) as a,
            running_writer(CountedCommit(db_b)) as b,
        ):

            async def play(writes: ProgressWrites, user: int, content: int, parity: int) -> None:
                for segment in segments[parity::2]:
                    write = heartbeat(user, content, segment, at=at)
                    await writes.record(write, timeout=TIMEOUT)

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


# --- failures and events ------------------------------------------------------------------------


async def test_a_failed_batch_fails_its_askers_and_the_writer_goes_on(database_url: str) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, opened_at=LONG_AGO)
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
        course = await db.transaction(seed, opened_at=LONG_AGO, max_playback_rate=16.0)
        learner, video = course.learners[0], course.videos[0]
        send, published = trio.open_memory_channel[tuple[Event, tuple]](10)

        async def publish(event: Event) -> None:
            assert isinstance(event, ProgressChanged)
            # Published after the commit: the row is already there for anyone to read.
            send.send_nowait((event, await stored_played(db, event.user_id, event.content_id)))

        async with running_writer(CountedCommit(db), publish) as writes:
            at = next_hour()  # received at once, recorded in any order: 30 s at 16x is credited
            async with trio.open_nursery() as nursery:
                for segment in [(0, 10), (10, 20), (20, 30)]:
                    write = heartbeat(learner, video, segment, at=at, position=segment[1])
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
        course = await db.transaction(seed, opened_at=LONG_AGO)
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


async def test_a_batch_is_answered_only_after_its_before_answer_hook_returns(
    database_url: str,
) -> None:
    """The node invalidates cached dashboards in this hook: an asker's next read comes after."""
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, learners=3, opened_at=LONG_AGO)
        video = course.videos[0]
        answered: list[int] = []
        hooked: list[tuple[list[tuple[int, int]], list[int]]] = []

        async def before_answer(events: Sequence[Event]) -> None:
            await trio.sleep(0.05)  # a slow invalidation, still within the budget
            rows = [(e.user_id, e.content_id) for e in events if isinstance(e, ProgressChanged)]
            hooked.append((sorted(rows), list(answered)))

        async def send(user: int, segment: tuple[float, float]) -> None:
            answer = await writes.record(heartbeat(user, video, segment), timeout=TIMEOUT)
            assert isinstance(answer, Written)
            answered.append(user)

        async with running_writer(CountedCommit(db), before_answer=before_answer) as writes:
            async with trio.open_nursery() as nursery:
                for user in course.learners:
                    nursery.start_soon(send, user, (0.0, 10.0))
            # A write that changes nothing does not call it.
            await send(course.learners[0], (2.0, 8.0))
            stats = writes.statistics()

    assert hooked == [(sorted((u, video) for u in course.learners), [])]
    assert sorted(answered) == sorted([*course.learners, course.learners[0]])
    assert (stats.batches, stats.hooks_late) == (2, 0)


async def test_a_stuck_or_failing_before_answer_hook_holds_answers_only_for_its_budget(
    database_url: str,
) -> None:
    async with bridge.open_bridge(), open_database(database_url) as db:
        course = await db.transaction(seed, opened_at=LONG_AGO)
        learner, video = course.learners[0], course.videos[0]
        calls = 0

        async def before_answer(events: Sequence[Event]) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                await trio.sleep_forever()
            raise ConnectionError("the cache is unreachable")

        async with running_writer(
            CountedCommit(db), before_answer=before_answer, before_answer_budget=0.2
        ) as writes:
            with trio.fail_after(5):
                for second in range(2):
                    write = heartbeat(learner, video, (second * 10.0, second * 10.0 + 5))
                    assert isinstance(await writes.record(write, timeout=TIMEOUT), Written)
            stats = writes.statistics()
        assert (calls, stats.hooks_late, stats.events_published) == (2, 2, 2)
        assert await stored_played(db, learner, video) == ((0, 5), (10, 15))
