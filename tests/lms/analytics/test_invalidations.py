"""The node's event sink: events pass on unchanged, and the dashboards' tags they outdate are
invalidated in one call per batch of events, on a real (memory-tier) cache."""

from __future__ import annotations

import trio
import trio.testing

from lms.analytics.invalidations import EventInvalidations
from lms.cache.cache import Cache
from proto.events import Event, JobChanged, ProgressChanged


def changed(user: int, course: int, content: int) -> ProgressChanged:
    return ProgressChanged(
        user_id=user,
        course_id=course,
        content_id=content,
        position=1.0,
        watched_seconds=1.0,
        duration=10.0,
        coverage=0.1,
        completed=False,
        played=[(0.0, 1.0)],
    )


def job(status: str, progress: float = 0.0) -> JobChanged:
    return JobChanged(
        job_id=1, course_id=7, content_id=9, uploader_id=3, status=status, progress=progress
    )


async def cached(cache: Cache, key: str, tags: list[str]) -> None:
    async def compute() -> int:
        return 1

    await cache.get_or_compute(key, tags, 60.0, compute, int)


async def test_a_batch_of_progress_events_is_one_invalidation_of_their_tags(
    nursery: trio.Nursery,
) -> None:
    cache = Cache(max_bytes=1 << 20)
    passed: list[Event] = []

    async def live(event: Event) -> None:
        passed.append(event)

    sink = EventInvalidations(cache, live)
    await nursery.start(sink.run)
    for key, tags in [
        ("a", ["user:1"]),
        ("b", ["course:7"]),
        ("c", ["content:9"]),
        ("d", ["platform"]),
        ("e", ["user:2", "course:8"]),
    ]:
        await cached(cache, key, tags)
    batch = [changed(1, 7, 9), changed(1, 7, 10), changed(3, 7, 9)]
    for event in batch:  # as the writer publishes a committed batch: back to back
        await sink.publish(event)
    assert passed == batch
    await trio.testing.wait_all_tasks_blocked()

    assert sink.calls == 1
    assert cache.statistics().invalidations_sent == 1
    assert cache.statistics().memory.entries == 1  # only "e" is left
    assert cache.statistics().memory.invalidated == 4


async def test_a_job_outdates_its_course_when_its_status_moves_not_on_each_tick(
    nursery: trio.Nursery,
) -> None:
    cache = Cache(max_bytes=1 << 20)

    async def live(event: Event) -> None:
        pass

    sink = EventInvalidations(cache, live)
    await nursery.start(sink.run)
    calls = []
    for event in [
        job("queued"),
        job("probing"),
        job("transcoding", 0.1),
        job("transcoding", 0.5),
        job("transcoding", 0.9),
        job("ready", 1.0),
    ]:
        await cached(cache, "course", ["course:7"])
        await sink.publish(event)
        await trio.testing.wait_all_tasks_blocked()
        calls.append(sink.calls)
    assert calls == [1, 2, 3, 3, 3, 4]


async def test_settle_returns_once_its_events_tags_are_invalidated_sharing_calls(
    nursery: trio.Nursery,
) -> None:
    """The progress writer's hook: what a batch outdated is gone when settle returns, and
    batches settling side by side share calls."""
    cache = Cache(max_bytes=1 << 20)

    async def live(event: Event) -> None:
        raise AssertionError("settle passes nothing on: the writer publishes after answering")

    sink = EventInvalidations(cache, live)
    await nursery.start(sink.run)
    for key, tags in [("a", ["user:1"]), ("b", ["course:8"]), ("c", ["user:2"])]:
        await cached(cache, key, tags)

    await sink.settle([changed(1, 7, 9)])
    assert cache.statistics().memory.entries == 2  # "a" went before settle returned
    async with trio.open_nursery() as batches:
        batches.start_soon(sink.settle, [changed(3, 8, 10)])
        batches.start_soon(sink.settle, [changed(2, 9, 11)])
    assert cache.statistics().memory.entries == 0
    assert sink.calls == 2  # one for the first batch, one for the two side by side
    await sink.settle([])  # nothing outdated: no call
    assert sink.calls == 2
