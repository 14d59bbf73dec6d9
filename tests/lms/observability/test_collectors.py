"""The node's figures as Prometheus reads them, from real actors, a real cache and a real
PostgreSQL: each collector shows what its owner's `statistics()` holds at scrape time."""

from __future__ import annotations

import itertools
from functools import partial

import trio
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from actors.bus import Bus
from actors.connection import Connection, Peer
from actors.live_router import LiveRouter
from actors.progress_writer import start_progress_writer
from actors.runtime import Inbox, Supervisor
from actors.transcoder import TranscodeFigures
from lms.cache.cache import Cache
from lms.domain.progress import Refused, Written
from lms.observability.collectors import (
    ActorFigures,
    BridgeFigures,
    CacheFigures,
    DatabaseFigures,
    JobStates,
    LiveFigures,
    ProgressFigures,
    TranscodeAttemptFigures,
)
from lms.observability.metrics import NodeMetrics
from lms.store import bridge
from lms.store import progress as progress_store
from lms.store.database import Database
from proto.events import Event
from proto.progress import ProgressWrite
from tests.databases import open_database
from tests.jobs_setup import enqueue, video_content
from tests.progress_setup import heartbeat, seed

TIMEOUT = 10.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(*collectors: Collector, metrics: NodeMetrics | None = None) -> Samples:
    """Every sample a scrape shows, by name and labels, parsed back from the text format."""
    metrics = metrics or NodeMetrics("test")
    for collector in collectors:
        metrics.add(collector)
    text = (await metrics.exposition()).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


class CrashOnce:
    """An actor whose first incarnation crashes on its first message; the next one sets
    `restarted` and never reads its inbox."""

    def __init__(self) -> None:
        self.incarnations = 0
        self.restarted = trio.Event()

    def __call__(self, inbox: Inbox[str]) -> CrashOnce:
        self.incarnations += 1
        self._inbox = inbox
        return self

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self.incarnations == 1:
            await self._inbox.receive()
            raise RuntimeError("boom")
        self.restarted.set()
        await trio.sleep_forever()


async def test_each_actor_shows_its_mailbox_and_its_restarts(
    nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    supervisor = Supervisor("node")
    await nursery.start(supervisor.run)
    actor = CrashOnce()
    address = await supervisor.start("worker", actor, capacity=8)
    await address.tell("crash")
    await actor.restarted.wait()
    for message in ("queued", "queued too"):
        await address.tell(message)

    samples = await scrape(ActorFigures(supervisor))
    worker = (("actor", "worker"),)
    assert samples["lms_actor_mailbox_depth", worker] == 2
    assert samples["lms_actor_mailbox_capacity", worker] == 8
    assert samples["lms_actor_restarts_total", worker] == 1


async def test_rooms_and_sessions_are_counted_not_listed(nursery: trio.Nursery) -> None:
    bus = Bus()
    await nursery.start(bus.run)
    router = LiveRouter("a", bus)
    await nursery.start(router.run)
    supervisor = Supervisor("node")
    await nursery.start(supervisor.run)
    for n, user in enumerate((7, 8, 8)):  # user 8 on two devices: one session
        conn = Connection(Peer(f"a/{n}", user, "Ada", f"device-{n}", 42), 8)
        await router.attach(conn)
        await router.join(conn)

    samples = await scrape(LiveFigures(router), ActorFigures(supervisor, router))
    assert samples["lms_live_rooms", ()] == 1
    assert samples["lms_live_sessions", ()] == 2
    # Restarts of keyed actors by registry: never a series per course or user.
    assert samples["lms_actor_restarts_total", (("actor", "room"),)] == 0
    assert samples["lms_actor_restarts_total", (("actor", "session"),)] == 0
    assert not [key for key in samples if "42" in str(key) or "user" in str(key)]


async def ignore(event: Event) -> None:
    pass


async def test_committed_progress_shows_as_updates_batch_sizes_and_commit_times(
    database_url: str,
) -> None:
    async with open_database(database_url) as db, trio.open_nursery() as nursery:
        course = await db.transaction(seed, learners=3, videos=2)
        supervisor = Supervisor("node")
        await nursery.start(supervisor.run)
        rows = progress_store.ProgressRows()

        async def commit(batch: list[ProgressWrite]) -> list[Written | Refused]:
            return await db.kept_connection(rows.apply_batch, batch)

        writes = await start_progress_writer(supervisor, commit, ignore)
        async with trio.open_nursery() as senders:
            for user, content in itertools.product(course.learners, course.videos):
                write = heartbeat(user, content, (0, 30))
                senders.start_soon(partial(writes.record, write, timeout=TIMEOUT))
        batches = writes.statistics().batches

        samples = await scrape(ProgressFigures(writes))
        nursery.cancel_scope.cancel()
    assert samples["lms_progress_updates_total", ()] == 6
    assert samples["lms_progress_batch_size_count", ()] == batches
    assert samples["lms_progress_batch_size_sum", ()] == 6
    assert samples["lms_progress_batch_size_bucket", (("le", "+Inf"),)] == batches
    assert samples["lms_progress_commit_seconds_count", ()] == batches
    assert 0 < samples["lms_progress_commit_seconds_sum", ()] < TIMEOUT


async def test_cache_hits_and_misses_are_counted_per_tier() -> None:
    cache = Cache(max_bytes=1 << 20)

    async def compute() -> dict[str, int]:
        return {"answer": 42}

    for _ in range(3):
        await cache.get_or_compute("k", ["t"], 60.0, compute, dict[str, int])

    samples = await scrape(CacheFigures(cache))
    assert samples["lms_cache_hits_total", (("tier", "memory"),)] == 2
    assert samples["lms_cache_misses_total", (("tier", "memory"),)] == 1
    assert ("lms_cache_hits_total", (("tier", "redis"),)) not in samples  # no Redis tier here


async def test_the_pool_shows_its_connections_and_slow_units_by_store_function(
    database_url: str,
) -> None:
    async with bridge.open_bridge():
        # A threshold any sleep passes.
        db = await Database.connect(database_url, min_size=1, max_size=3, slow_sql_ms=1)
        try:
            calls_before = (await scrape(BridgeFigures()))["lms_bridge_call_seconds_count", ()]
            await db.connection(sleep_a_little)
            samples = await scrape(DatabaseFigures(db), BridgeFigures())
        finally:
            await db.close()
    assert samples["lms_db_pool_max", ()] == 3
    in_use = samples["lms_db_pool_connections", (("state", "in_use"),)]
    idle = samples["lms_db_pool_connections", (("state", "idle"),)]
    assert in_use + idle >= 1
    assert idle >= 1  # nothing holds a connection during the scrape
    slow = {labels: value for (name, labels), value in samples.items() if "slow" in name}
    assert slow == {(("function", f"{__name__}.sleep_a_little"),): 1}
    assert samples["lms_bridge_call_seconds_count", ()] == calls_before + 1


async def sleep_a_little(conn: object) -> None:
    await conn.execute("SELECT pg_sleep(0.01)")  # type: ignore[attr-defined]


async def test_the_queue_by_state_is_read_once_per_interval(database_url: str) -> None:
    now = 0.0
    async with open_database(database_url) as db:
        content = await video_content(db)
        await enqueue(db, content)
        states = JobStates(db, ttl=5.0, clock=lambda: now)
        metrics = NodeMetrics("test")
        metrics.add_refresh(states.refresh)
        first = await scrape(states, metrics=metrics)
        await enqueue(db, content)  # replaces (cancels) the first job
        again = await scrape(metrics=metrics)
        now = 5.0
        later = await scrape(metrics=metrics)

    def jobs(samples: Samples, state: str) -> float:
        return samples["lms_transcode_jobs", (("state", state),)]

    assert (jobs(first, "queued"), jobs(first, "cancelled"), jobs(first, "done")) == (1, 0, 0)
    assert (jobs(again, "queued"), jobs(again, "cancelled")) == (1, 0)  # still the cached read
    assert (jobs(later, "queued"), jobs(later, "cancelled")) == (1, 1)


async def test_transcodes_show_duration_speed_failures_and_time_to_playable() -> None:
    figures = TranscodeFigures()
    figures.done(wall_seconds=10.0, media_seconds=20.0)
    figures.playable(since_queued=3.0)
    figures.attempt_failed(final=False)
    figures.attempt_failed(final=False)
    figures.attempt_failed(final=True)

    samples = await scrape(TranscodeAttemptFigures(figures))
    assert samples["lms_transcode_job_duration_seconds_sum", ()] == 10.0
    assert samples["lms_transcode_job_duration_seconds_bucket", (("le", "10.0"),)] == 1
    assert samples["lms_transcode_job_duration_seconds_bucket", (("le", "5.0"),)] == 0
    assert samples["lms_transcode_realtime_ratio_sum", ()] == 2.0
    assert samples["lms_time_to_playable_seconds_count", ()] == 1
    assert samples["lms_transcode_failures_total", (("final", "false"),)] == 2
    assert samples["lms_transcode_failures_total", (("final", "true"),)] == 1
