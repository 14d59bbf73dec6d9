"""The job queue on a real PostgreSQL: claims, leases, fencing, retries, cancellation."""

from __future__ import annotations

import asyncpg
import pytest
import trio

from lms.domain.jobs import IllegalMove, retry_delay
from lms.store import jobs as store
from lms.store.database import Database
from lms.store.videos import video_record
from proto.jobs import (
    ClaimedJob,
    Completion,
    JobState,
    JobStatus,
    LeaseStatus,
    WorkerKind,
    WorkerSlot,
)
from tests.databases import open_database
from tests.jobs_setup import LEASE, MANIFEST, RENDITION, VideoContent, claim, enqueue, video_content
from tests.polling import eventually


async def state_of(db: Database, job_id: int) -> tuple[JobState, int, str | None]:
    async def fetch(conn: asyncpg.Connection) -> tuple[JobState, int, str | None]:
        row = await conn.fetchrow("SELECT state, attempts, error FROM jobs WHERE id = $1", job_id)
        return JobState(row["state"]), row["attempts"], row["error"]

    return await db.transaction(fetch)


async def test_two_claimers_at_once_never_take_the_same_job(database_url: str) -> None:
    async with open_database(database_url) as db:
        content = await video_content(db)
        queued = {(await enqueue(db, content, f"uploads/{n}")).id for n in range(2)}
        # A second content, so the new upload does not cancel the first job.
        other = await video_content(db)
        queued.add((await enqueue(db, other)).id)
        claimed: list[ClaimedJob | None] = []

        async def claimer(name: str) -> None:
            claimed.append(await claim(db, name))

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(claimer, f"w{n}")
        taken = [c.lease.job_id for c in claimed if c is not None]
        assert sorted(taken) == sorted(queued - {min(queued)})  # the older upload was replaced
        assert claimed.count(None) == 2


async def test_a_newer_upload_cancels_the_contents_unfinished_job(database_url: str) -> None:
    async with open_database(database_url) as db:
        content = await video_content(db)
        first = await enqueue(db, content, "uploads/first")
        jobs = await db.transaction(
            store.enqueue,
            content_id=content.content_id,
            upload_id=None,
            uploader_id=content.owner_id,
            source="uploads/second",
            max_attempts=3,
        )
        assert [j.id for j in jobs] == [jobs[0].id, first.id]
        assert jobs[1].status is JobStatus.CANCELLED
        assert jobs[1].error == "replaced by a newer upload"
        assert (await claim(db)).source == "uploads/second"


async def test_an_expired_lease_is_taken_again_and_the_old_holder_is_fenced_out(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        content = await video_content(db)
        job = await enqueue(db, content)
        stalled = await claim(db, "stalled", lease=0.05)
        assert stalled is not None
        assert await claim(db, "eager") is None  # running under a live lease: not claimable

        reaped = await eventually(lambda: db.transaction(store.reap), bool)
        assert [(v.id, v.state, v.attempts) for v in reaped] == [(job.id, JobState.QUEUED, 1)]
        assert reaped[0].error == store.LEASE_EXPIRED

        taker = await claim(db, "taker")
        assert taker is not None
        assert taker.attempt == 2
        assert taker.stale_workdir == f"work/{stalled.lease.lease_id}"

        # The stalled worker wakes up: nothing it writes lands.
        old = stalled.lease
        assert await db.transaction(store.renew, old, LEASE, "x", 0.5, None) is LeaseStatus.LOST
        assert await db.transaction(store.add_rendition, old, RENDITION) is LeaseStatus.LOST
        late = await db.transaction(store.complete, old, MANIFEST, "videos/old")
        assert late is LeaseStatus.LOST
        failed = await db.transaction(store.fail_attempt, old, "late", retryable=True)
        assert failed is LeaseStatus.LOST

        done = await db.transaction(store.complete, taker.lease, MANIFEST, "videos/new")
        assert done == Completion(replaced=None)
        assert await state_of(db, job.id) == (JobState.DONE, 2, None)
        # A job completes once: the winner cannot complete it again either.
        again = await db.transaction(store.complete, taker.lease, MANIFEST, "videos/again")
        assert again is LeaseStatus.LOST
        record = await db.connection(video_record, content.content_id, 0)
        assert record.published == "videos/new"
        assert record.manifest == MANIFEST
        duration = await db.transaction(
            lambda conn: conn.fetchval(
                "SELECT duration_seconds FROM contents WHERE id = $1", content.content_id
            )
        )
        assert duration == 12.5


async def test_a_lease_that_runs_out_with_no_attempts_left_fails_the_job(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        job = await enqueue(db, await video_content(db), max_attempts=1)
        await claim(db, lease=0.01)
        reaped = await eventually(lambda: db.transaction(store.reap), bool)
        assert reaped[0].state is JobState.FAILED
        assert await claim(db) is None
        assert await state_of(db, job.id) == (JobState.FAILED, 1, store.LEASE_EXPIRED)


async def test_crashes_are_retried_until_the_attempts_run_out(database_url: str) -> None:
    async with open_database(database_url) as db:
        job = await enqueue(db, await video_content(db), max_attempts=2)
        first = await claim(db)
        view = await db.transaction(store.fail_attempt, first.lease, "crashed", retryable=True)
        assert (view.state, view.attempts, view.error) == (JobState.QUEUED, 1, "crashed")
        assert await claim(db) is None  # not before its retry delay
        [waits] = await db.transaction(
            lambda conn: conn.fetch("SELECT retry_at - now() AS left FROM jobs")
        )
        assert waits["left"].total_seconds() == pytest.approx(retry_delay(1), abs=0.5)
        await db.transaction(lambda conn: conn.execute("UPDATE jobs SET retry_at = now()"))
        second = await claim(db)
        assert second.attempt == 2
        view = await db.transaction(store.fail_attempt, second.lease, "again", retryable=True)
        assert (view.state, view.status, view.error) == (JobState.FAILED, JobStatus.FAILED, "again")
        assert view.finished_at is not None
        assert await state_of(db, job.id) == (JobState.FAILED, 2, "again")


async def test_bad_input_fails_at_once_whatever_attempts_are_left(database_url: str) -> None:
    async with open_database(database_url) as db:
        await enqueue(db, await video_content(db), max_attempts=5)
        claimed = await claim(db)
        view = await db.transaction(
            store.fail_attempt, claimed.lease, "not a video file", retryable=False
        )
        assert (view.state, view.attempts, view.error) == (JobState.FAILED, 1, "not a video file")


async def test_a_stopping_worker_gives_its_job_back_without_spending_an_attempt(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        job = await enqueue(db, await video_content(db))
        claimed = await claim(db)
        await db.transaction(store.release, claimed.lease)
        assert await state_of(db, job.id) == (JobState.QUEUED, 0, None)
        again = await claim(db)
        assert again.attempt == 1


async def test_progress_and_renditions_are_recorded_under_the_lease(database_url: str) -> None:
    async with open_database(database_url) as db:
        content = await video_content(db)
        await enqueue(db, content)
        claimed = await claim(db)
        lease = claimed.lease
        assert await db.transaction(store.renew, lease, LEASE, "transcoding", 0.4, 3.0) is (
            LeaseStatus.HELD
        )
        assert await db.transaction(store.add_rendition, lease, RENDITION) is LeaseStatus.HELD
        record = await db.connection(video_record, content.content_id, 0)
        assert record.job.status is JobStatus.TRANSCODING
        assert (record.job.progress, record.job.eta_seconds) == (0.4, 3.0)
        assert record.job.renditions == ["360p"]
        assert record.job_renditions == [RENDITION]
        assert record.job_workdir == f"work/{lease.lease_id}"
        assert record.published is None


async def test_cancelling_tells_the_worker_at_its_next_renewal(database_url: str) -> None:
    async with open_database(database_url) as db:
        job = await enqueue(db, await video_content(db))
        claimed = await claim(db)
        cancelled = await db.transaction(store.cancel, job.id)
        assert cancelled.status is JobStatus.CANCELLED
        renewal = await db.transaction(store.renew, claimed.lease, LEASE, "x", 0.1, None)
        assert renewal is LeaseStatus.CANCELLED
        completion = await db.transaction(store.complete, claimed.lease, MANIFEST, "videos/x")
        assert completion is LeaseStatus.CANCELLED
        with pytest.raises(IllegalMove):
            await db.transaction(store.cancel, job.id)
        assert await db.transaction(store.cancel, 10_000) is None


async def test_retrying_gives_a_failed_or_cancelled_job_fresh_attempts(database_url: str) -> None:
    async with open_database(database_url) as db:
        job = await enqueue(db, await video_content(db), max_attempts=1)
        claimed = await claim(db)
        with pytest.raises(IllegalMove, match="running"):
            await db.transaction(store.retry, job.id)
        await db.transaction(store.fail_attempt, claimed.lease, "boom", retryable=True)
        retried = await db.transaction(store.retry, job.id)
        assert (retried.state, retried.attempts, retried.error) == (JobState.QUEUED, 0, None)
        with pytest.raises(IllegalMove, match="queued"):
            await db.transaction(store.retry, job.id)
        done = await claim(db)
        await db.transaction(store.complete, done.lease, MANIFEST, "videos/a")
        with pytest.raises(IllegalMove, match="done"):
            await db.transaction(store.retry, job.id)


async def test_a_deleted_content_takes_its_job_with_it(database_url: str) -> None:
    async with open_database(database_url) as db:
        content = await video_content(db)
        await enqueue(db, content)
        claimed = await claim(db)
        await db.transaction(
            lambda conn: conn.execute("DELETE FROM contents WHERE id = $1", content.content_id)
        )
        renewal = await db.transaction(store.renew, claimed.lease, LEASE, "x", 0.1, None)
        assert renewal is LeaseStatus.GONE
        failed = await db.transaction(store.fail_attempt, claimed.lease, "x", retryable=True)
        assert failed is LeaseStatus.GONE


async def test_instructors_see_only_their_courses_jobs(database_url: str) -> None:
    async with open_database(database_url) as db:
        mine: VideoContent = await video_content(db)
        theirs = await video_content(db)
        my_job = await enqueue(db, mine)
        their_job = await enqueue(db, theirs)
        everything = await db.transaction(
            store.list_jobs, owner_id=None, state=None, limit=10, offset=0
        )
        assert [j.id for j in everything] == [their_job.id, my_job.id]
        only_mine = await db.transaction(
            store.list_jobs, owner_id=mine.owner_id, state=None, limit=10, offset=0
        )
        assert [j.id for j in only_mine] == [my_job.id]
        running = await db.transaction(
            store.list_jobs, owner_id=None, state=JobState.RUNNING, limit=10, offset=0
        )
        assert running == []


async def test_workers_register_renew_and_leave(database_url: str) -> None:
    async with open_database(database_url) as db:
        slots = [WorkerSlot(f"n/{i}", "n", WorkerKind.WORKER, "host", 42) for i in range(2)]
        await db.transaction(store.register_workers, slots)
        job = await enqueue(db, await video_content(db))
        await claim(db, "n/1")
        await db.transaction(store.renew_workers, ["n/0", "n/1"])
        workers = await db.transaction(store.list_workers, 60.0)
        assert [(w.id, w.job_id, w.alive, w.kind) for w in workers] == [
            ("n/0", None, True, WorkerKind.WORKER),
            ("n/1", job.id, True, WorkerKind.WORKER),
        ]
        await db.transaction(store.unregister_workers, ["n/0", "n/1"])
        assert await db.transaction(store.list_workers, 60.0) == []
