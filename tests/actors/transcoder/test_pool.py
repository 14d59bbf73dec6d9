"""The TranscoderPool with real worker processes (`python -m media.worker`), a real PostgreSQL
queue and clips made with PyAV: jobs finish and publish, bad input fails with the worker's
reason, killed workers are retried, cancelled jobs stop, a stopping pool gives its jobs back."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import trio

from actors.runtime import Address, Supervisor
from actors.transcoder import MAILBOX_CAPACITY, PoolConfig, TranscoderPool
from lms.jobs.queue import PostgresJobQueue
from lms.store import jobs, videos
from lms.store.database import Database
from media import synthetic
from proto.events import Event, JobChanged
from proto.jobs import JobState, JobsWaiting, PoolMessage, StopJob, WorkerKind
from tests.databases import open_database
from tests.jobs_setup import VideoContent, enqueue, video_content
from tests.media import clips
from tests.polling import eventually

LEASE = 2
DEADLINE = 30


class EventLog:
    """The pool's event sink: every JobChanged, and a way to wait for one."""

    def __init__(self) -> None:
        self.events: list[JobChanged] = []
        self._arrived = trio.Event()

    async def publish(self, event: Event) -> None:
        assert isinstance(event, JobChanged)
        self.events.append(event)
        self._arrived.set()
        self._arrived = trio.Event()

    async def wait_for(self, wanted: Callable[[JobChanged], bool]) -> JobChanged:
        with trio.fail_after(DEADLINE):
            while True:
                found = next((e for e in self.events if wanted(e)), None)
                if found is not None:
                    return found
                await self._arrived.wait()

    def of(self, job_id: int) -> list[str]:
        return [e.status for e in self.events if e.job_id == job_id]


@dataclass
class Rig:
    db: Database
    media: Path
    log: EventLog
    pool: Address[PoolMessage]
    stop: trio.CancelScope

    async def upload(self, content: VideoContent, source: Path, max_attempts: int = 3) -> int:
        """Put `source` where a finished upload would be and queue its job, as uploads do."""
        relative = f"uploads/{source.name}"
        (self.media / "uploads").mkdir(exist_ok=True)
        shutil.copy(source, self.media / relative)
        job = await enqueue(self.db, content, relative, max_attempts)
        self.pool.tell_nowait(JobsWaiting())
        return job.id

    async def job(self, job_id: int) -> asyncpg.Record:
        return await self.db.transaction(
            lambda conn: conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        )

    async def finished(self, job_id: int) -> asyncpg.Record:
        return await eventually(
            lambda: self.job(job_id), lambda row: row["state"] not in ("queued", "running")
        )


@asynccontextmanager
async def pool_rig(database_url: str, media: Path, slots: int = 1) -> AsyncIterator[Rig]:
    async with open_database(database_url) as db, trio.open_nursery() as nursery:
        log = EventLog()
        supervisor = Supervisor("test")
        await nursery.start(supervisor.run)
        config = PoolConfig(
            media_dir=media,
            node_id="test-node",
            kind=WorkerKind.NODE,
            slots=slots,
            lease_seconds=LEASE,
            poll_seconds=0.2,
            grace=0.5,
        )
        queue = PostgresJobQueue(db, node_id="test-node", lease_seconds=LEASE)
        address = await supervisor.start(
            "transcoder_pool",
            lambda inbox: TranscoderPool(inbox, queue, config, log.publish),
            capacity=MAILBOX_CAPACITY,
        )
        yield Rig(db, media, log, address, nursery.cancel_scope)
        nursery.cancel_scope.cancel()


def worker_pids() -> list[int]:
    """The media workers this test process started (its children running media.worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"media.worker" in cmdline:
            found.append(int(entry.name))
    return found


async def stopped_and_cleaned(media: Path) -> None:
    """Wait until no worker process runs and no work dir is left."""

    async def leftovers() -> tuple[list[int], list[str]]:
        return worker_pids(), files_under(media / "work")

    await eventually(leftovers, lambda left: left == ([], []))


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


@pytest.fixture
def media(tmp_path: Path) -> Path:
    path = tmp_path / "media"
    path.mkdir()
    return path


@pytest.fixture
def clip(small_clip: Path) -> Path:
    return small_clip


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough that a test can act while its transcode runs."""
    folder = tmp_path_factory.mktemp("clips")
    return synthetic.write_clip(folder / "long.mp4", width=320, height=180, seconds=30.0, fps=15)


async def test_a_clip_is_transcoded_published_and_announced(
    database_url: str, media: Path, clip: Path
) -> None:
    async with pool_rig(database_url, media) as rig:
        content = await video_content(rig.db)
        job_id = await rig.upload(content, clip)
        done = await rig.finished(job_id)
        assert (done["state"], done["attempts"], done["progress"]) == ("done", 1, 1.0)
        record = await rig.db.connection(videos.video_record, content.content_id, 0)
        published = media / record.published
        assert record.manifest.duration == pytest.approx(1.0, abs=0.1)
        for rendition in record.manifest.renditions:
            assert (published / rendition.mp4).stat().st_size > 0
        assert (published / record.manifest.hls_master).is_file()
        assert (published / record.manifest.thumbnail).is_file()
        # Published by moving the work dir: nothing is left to clean up.
        assert files_under(media / "work") == []
        statuses = rig.log.of(job_id)
        assert statuses[0] == "probing"
        assert statuses[-1] == "ready"
        ready = rig.log.events[-1]
        assert ready.renditions == [r.label for r in record.manifest.renditions]
        # A rendition was announced as playable before the job ended.
        assert any(e.renditions and e.status != "ready" for e in rig.log.events)
        duration = await rig.db.transaction(
            lambda conn: conn.fetchval(
                "SELECT duration_seconds FROM contents WHERE id = $1", content.content_id
            )
        )
        assert duration == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (clips.write_text, "not a video"),
        (clips.write_empty, "empty"),
        (lambda path: synthetic.write_audio_only(path), "no video"),
    ],
    ids=["text", "empty", "audio-only"],
)
async def test_bad_input_fails_at_once_with_the_workers_reason_and_the_pool_carries_on(
    database_url: str, media: Path, clip: Path, tmp_path: Path, make: Callable, reason: str
) -> None:
    bad = make(tmp_path / "lecture.mp4")
    async with pool_rig(database_url, media) as rig:
        content = await video_content(rig.db)
        job_id = await rig.upload(content, bad)
        failed = await rig.finished(job_id)
        assert failed["state"] == "failed"
        assert failed["attempts"] == 1  # bad input is not retried
        assert reason in failed["error"].lower()
        event = await rig.log.wait_for(lambda e: e.job_id == job_id and e.status == "failed")
        assert event.error == failed["error"]
        assert not (media / "videos").exists()
        assert files_under(media / "work") == []
        # The pool is still there for the next job.
        good = await rig.upload(await video_content(rig.db), clip)
        assert (await rig.finished(good))["state"] == "done"


async def test_a_truncated_upload_fails_with_the_workers_reason(
    database_url: str, media: Path, clip: Path, tmp_path: Path
) -> None:
    cut = clips.truncate(clip, tmp_path / "cut.mp4", keep=0.5)
    async with pool_rig(database_url, media) as rig:
        job_id = await rig.upload(await video_content(rig.db), cut)
        failed = await rig.finished(job_id)
        assert failed["state"] == "failed"
        assert failed["error"]


@pytest.mark.parametrize(("max_attempts", "ends"), [(2, "done"), (1, "failed")])
async def test_a_killed_worker_fails_the_attempt_and_the_job_is_retried_while_attempts_last(
    database_url: str, media: Path, long_clip: Path, max_attempts: int, ends: str
) -> None:
    async with pool_rig(database_url, media) as rig:
        job_id = await rig.upload(await video_content(rig.db), long_clip, max_attempts)
        await rig.log.wait_for(lambda e: e.job_id == job_id and e.status == "transcoding")
        [pid] = worker_pids()
        os.kill(pid, signal.SIGKILL)
        row = await rig.finished(job_id)
        assert row["state"] == ends
        crash = await rig.log.wait_for(lambda e: e.job_id == job_id and e.error is not None)
        assert "killed by SIGKILL" in crash.error
        assert crash.status == ("queued" if max_attempts == 2 else "failed")
        assert row["attempts"] == (2 if ends == "done" else 1)
        assert files_under(media / "work") == []


async def test_cancelling_a_running_job_stops_its_worker_and_removes_its_files(
    database_url: str, media: Path, long_clip: Path
) -> None:
    async with pool_rig(database_url, media) as rig:
        job_id = await rig.upload(await video_content(rig.db), long_clip)
        await rig.log.wait_for(lambda e: e.job_id == job_id and e.status == "transcoding")
        # Frozen, it cannot act on SIGTERM: the pool must follow up with SIGKILL.
        [pid] = worker_pids()
        os.kill(pid, signal.SIGSTOP)
        await rig.db.transaction(jobs.cancel, job_id)
        rig.pool.tell_nowait(StopJob(job_id))
        await stopped_and_cleaned(media)
        assert (await rig.job(job_id))["state"] == "cancelled"
        assert not (media / "videos").exists()


async def test_deleting_the_content_stops_its_job_at_the_next_renewal(
    database_url: str, media: Path, long_clip: Path
) -> None:
    async with pool_rig(database_url, media) as rig:
        content = await video_content(rig.db)
        job_id = await rig.upload(content, long_clip)
        await rig.log.wait_for(lambda e: e.job_id == job_id and e.status == "transcoding")
        [pid] = worker_pids()
        os.kill(pid, signal.SIGSTOP)  # it may not finish first: the renewal must notice
        await rig.db.transaction(
            lambda conn: conn.execute("DELETE FROM contents WHERE id = $1", content.content_id)
        )
        await rig.log.wait_for(lambda e: e.job_id == job_id and e.status == "cancelled")
        await stopped_and_cleaned(media)


async def test_a_stopping_pool_gives_its_running_job_back_uncounted(
    database_url: str, media: Path, long_clip: Path
) -> None:
    async with open_database(database_url) as db:
        content = await video_content(db)
    async with pool_rig(database_url, media) as rig:
        job_id = await rig.upload(content, long_clip)
        await rig.log.wait_for(lambda e: e.job_id == job_id and e.status == "transcoding")
        rig.stop.cancel()
    assert worker_pids() == []
    assert files_under(media / "work") == []
    async with open_database(database_url) as db:
        row = await db.transaction(
            lambda conn: conn.fetchrow("SELECT state, attempts FROM jobs WHERE id = $1", job_id)
        )
        assert (row["state"], row["attempts"]) == ("queued", 0)
        assert await db.transaction(jobs.list_workers, 60.0) == []


async def test_a_job_whose_worker_vanished_is_taken_again_when_its_lease_runs_out(
    database_url: str, media: Path, clip: Path
) -> None:
    async with pool_rig(database_url, media) as rig:
        content = await video_content(rig.db)
        # Another worker claims the job and dies without a word: its lease just runs out.
        (media / "uploads").mkdir()
        shutil.copy(clip, media / "uploads/clip.mp4")
        job_id = (await enqueue(rig.db, content, "uploads/clip.mp4")).id
        claimed = await rig.db.transaction(
            jobs.claim,
            worker_id="dead-worker",
            node_id="dead-node",
            lease_id="00000000-0000-0000-0000-000000000001",
            lease_seconds=0.5,
            workdir="work/dead",
        )
        assert claimed is not None
        done = await rig.finished(job_id)
        assert (done["state"], done["attempts"]) == (JobState.DONE, 2)
        assert done["worker_id"].startswith("test-node/")
