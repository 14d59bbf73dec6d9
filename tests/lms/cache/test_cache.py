"""The two-tier cache: alone in memory, and as two nodes (two caches, two Buses) over one Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import msgspec
import pytest
import trio
import trio.testing

from actors.bus import Bus
from lms.cache.cache import Cache, Computation
from lms.cache.redis_tier import RedisTier
from lms.store import bridge
from lms.store.cache_tier import CacheTierStore
from lms.store.redis_bus import RedisTransport
from proto.cache import CACHE_CHANNEL
from proto.live import LiveMessage
from tests.lms.cache.conftest import WAIT, wait_until
from tests.redis_restart import restart_redis
from tests.services import RunningRedis

INVALIDATION_BOUND = 0.1


class Stats(msgspec.Struct, frozen=True):
    course_id: int
    learners: int


class Source:
    """The truth a computation reads, counting the reads; `gate`, when set, holds them."""

    def __init__(self, learners: int = 1) -> None:
        self.learners = learners
        self.computes = 0
        self.gate: trio.Event | None = None

    def stats(self, course_id: int) -> Callable[[], Awaitable[Stats]]:
        async def compute() -> Stats:
            self.computes += 1
            learners = self.learners  # read before waiting, as a query would
            if self.gate is not None:
                await self.gate.wait()
            return Stats(course_id, learners)

        return compute


@dataclass
class Node:
    cache: Cache
    bus: Bus


def unique(name: str) -> str:
    """A key of this test's own: the session's Redis is shared."""
    return f"{name}:{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def nodes(url: str, count: int = 2, max_bytes: int = 1 << 20) -> AsyncIterator[list[Node]]:
    """`count` nodes' caches and Buses over the Redis at `url`, their links up."""
    async with bridge.open_bridge(), trio.open_nursery() as nursery:
        started = []
        for n in range(count):
            bus = Bus(RedisTransport(url, f"node-{n}", backoff_max=0.1))
            store = CacheTierStore.from_url(url, max_ttl=600.0, timeout=0.2)
            tier = RedisTier(store, backoff_initial=0.02, backoff_max=0.1)
            cache = Cache(max_bytes=max_bytes, bus=bus, redis=tier)
            await nursery.start(cache.run)
            await nursery.start(bus.run)
            started.append(Node(cache, bus))
        await wait_until(lambda: all(_connected(node.bus) for node in started))
        yield started
        nursery.cancel_scope.cancel()


def _connected(bus: Bus) -> bool:
    transport = bus.statistics().transport
    return transport is not None and transport.connected


# --- one node, memory only ----------------------------------------------------------------------


async def test_a_value_is_computed_once_then_served_from_memory_as_its_type() -> None:
    cache = Cache(max_bytes=1 << 20)
    source = Source(learners=3)
    for _ in range(3):
        stats = await cache.get_or_compute("c:1", ["course:1"], 60.0, source.stats(1), Stats)
        assert stats == Stats(1, 3)
    assert source.computes == 1
    statistics = cache.statistics()
    assert (statistics.memory.hits, statistics.memory.misses, statistics.computes) == (2, 1, 1)
    assert statistics.redis is None
    assert statistics.most_requested == [("c:1", 3)]


async def test_invalidating_a_tag_makes_the_next_read_compute_afresh() -> None:
    cache = Cache(max_bytes=1 << 20)
    source = Source(learners=1)
    await cache.get_or_compute("c:1", ["course:1"], 60.0, source.stats(1), Stats)
    await cache.get_or_compute("c:2", ["course:2"], 60.0, source.stats(2), Stats)
    source.learners = 2
    await cache.invalidate("course:1")
    assert await cache.get_or_compute("c:1", ["course:1"], 60.0, source.stats(1), Stats) == Stats(
        1, 2
    )
    assert await cache.get_or_compute("c:2", ["course:2"], 60.0, source.stats(2), Stats) == Stats(
        2, 1
    )


async def test_a_value_computed_across_an_invalidation_is_returned_but_not_kept() -> None:
    cache = Cache(max_bytes=1 << 20)
    source = Source(learners=1)
    source.gate = trio.Event()
    answers = []

    async def ask() -> None:
        answers.append(
            await cache.get_or_compute("c:1", ["course:1"], 60.0, source.stats(1), Stats)
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        source.learners = 2  # a write commits while the computation runs
        await cache.invalidate("course:1")
        source.gate.set()
    assert answers == [Stats(1, 1)]  # asked before the write: may see before it
    assert await cache.get_or_compute("c:1", ["course:1"], 60.0, source.stats(1), Stats) == Stats(
        1, 2
    )


async def test_entries_expire_within_their_jittered_ttl(autojump_clock: trio.abc.Clock) -> None:
    cache = Cache(max_bytes=1 << 20, jitter=0.2, draw=lambda: 0.5)  # 60 s becomes 54 s
    source = Source()
    await cache.get_or_compute("c:1", [], 60.0, source.stats(1), Stats)
    await trio.sleep(53.9)
    await cache.get_or_compute("c:1", [], 60.0, source.stats(1), Stats)
    assert source.computes == 1
    await trio.sleep(0.2)
    await cache.get_or_compute("c:1", [], 60.0, source.stats(1), Stats)
    assert source.computes == 2


async def test_memory_is_bounded_by_bytes_least_recently_used_out_first() -> None:
    cache = Cache(max_bytes=100)
    source = Source()
    for course in range(10):  # c:N and {"course_id":N,"learners":1}: 31 bytes each
        await cache.get_or_compute(f"c:{course}", [], 60.0, source.stats(course), Stats)
    statistics = cache.statistics().memory
    assert (statistics.entries, statistics.evictions, statistics.bytes) == (3, 7, 93)
    for course in (7, 8, 9):  # the most recent three are still there
        await cache.get_or_compute(f"c:{course}", [], 60.0, source.stats(course), Stats)
    assert source.computes == 10
    await cache.get_or_compute("c:0", [], 60.0, source.stats(0), Stats)
    assert source.computes == 11


async def test_warm_fills_the_cache_and_skips_a_computation_that_fails() -> None:
    cache = Cache(max_bytes=1 << 20)
    source = Source()

    async def broken() -> Stats:
        raise LookupError("no such course")

    warmed = await cache.warm(
        [
            Computation("c:1", ["course:1"], 60.0, source.stats(1)),
            Computation("c:2", ["course:2"], 60.0, broken),
            Computation("c:3", ["course:3"], 60.0, source.stats(3)),
        ]
    )
    assert warmed == 2
    await cache.get_or_compute("c:3", ["course:3"], 60.0, source.stats(3), Stats)
    assert source.computes == 2
    assert cache.most_requested(1, prefix="c:") == ["c:3"]


async def test_an_error_while_computing_reaches_the_caller_and_is_not_cached() -> None:
    cache = Cache(max_bytes=1 << 20)

    async def broken() -> Stats:
        raise LookupError("no such course")

    with pytest.raises(LookupError):
        await cache.get_or_compute("c:1", [], 60.0, broken, Stats)
    source = Source()
    assert await cache.get_or_compute("c:1", [], 60.0, source.stats(1), Stats) == Stats(1, 1)


# --- two nodes over one Redis -------------------------------------------------------------------


async def test_ten_concurrent_misses_on_one_key_compute_once(redis_url: str) -> None:
    key = unique("c")
    source = Source()
    source.gate = trio.Event()
    answers: list[Stats] = []
    async with nodes(redis_url, count=1) as (node,):

        async def ask() -> None:
            answers.append(await node.cache.get_or_compute(key, [], 60.0, source.stats(1), Stats))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(ask)
            await trio.testing.wait_all_tasks_blocked()
            source.gate.set()
        assert source.computes == 1
        assert answers == [Stats(1, 1)] * 10
        assert node.cache.statistics().flights.shared == 9


async def test_a_value_one_node_computed_is_read_by_the_other_from_redis(redis_url: str) -> None:
    key, tag = unique("c"), unique("course")
    source = Source()
    async with nodes(redis_url) as (a, b):
        await a.cache.get_or_compute(key, [tag], 60.0, source.stats(1), Stats)
        for _ in range(2):
            assert await b.cache.get_or_compute(key, [tag], 60.0, source.stats(1), Stats) == Stats(
                1, 1
            )
        assert source.computes == 1
        on_b = b.cache.statistics()
        assert on_b.redis is not None
        assert (on_b.redis.hits, on_b.memory.hits, on_b.computes) == (1, 1, 0)


async def test_the_encoded_answer_is_the_same_bytes_computed_from_redis_and_from_memory(
    redis_url: str,
) -> None:
    key, tag = unique("c"), unique("course")
    source = Source()
    async with nodes(redis_url) as (a, b):
        computed = await a.cache.get_or_compute_encoded(key, [tag], 60.0, source.stats(1))
        from_redis = await b.cache.get_or_compute_encoded(key, [tag], 60.0, source.stats(1))
        from_memory = await b.cache.get_or_compute_encoded(key, [tag], 60.0, source.stats(1))
        assert computed == from_redis == from_memory == msgspec.json.encode(Stats(1, 1))
        assert source.computes == 1
        on_b = b.cache.statistics()
        assert on_b.redis is not None
        assert (on_b.redis.hits, on_b.memory.hits) == (1, 1)


async def test_invalidating_a_tag_drops_it_on_the_other_node_within_100_ms(
    redis_url: str,
) -> None:
    key, tag = unique("c"), unique("course")
    source = Source()
    async with nodes(redis_url) as (a, b):
        await b.cache.get_or_compute(key, [tag], 60.0, source.stats(1), Stats)
        assert b.cache.statistics().memory.entries == 1
        heard = trio.Event()

        def after_the_cache(message: LiveMessage) -> None:
            heard.set()

        # Subscribed after b's cache, so called after it dropped the entry.
        with b.bus.subscribe(CACHE_CHANNEL, after_the_cache):
            source.learners = 2
            started = trio.current_time()
            await a.cache.invalidate(tag)
            with trio.fail_after(WAIT):
                await heard.wait()
            elapsed = trio.current_time() - started
        assert elapsed < INVALIDATION_BOUND, f"took {elapsed * 1000:.1f} ms"
        assert b.cache.statistics().memory.entries == 0
        assert b.cache.statistics().invalidations_heard == 1
        for node in (a, b):
            assert await node.cache.get_or_compute(
                key, [tag], 60.0, source.stats(1), Stats
            ) == Stats(1, 2)
        assert source.computes == 2  # once more, for both nodes


async def test_while_redis_is_down_reads_are_computed_and_the_tier_is_used_again_when_back(
    own_redis: list[RunningRedis],
) -> None:
    source = Source()
    async with nodes(own_redis[0].url) as (a, b):
        await trio.to_thread.run_sync(own_redis[0].stop)
        with trio.fail_after(WAIT):
            assert await a.cache.get_or_compute("c:1", [], 60.0, source.stats(1), Stats) == Stats(
                1, 1
            )
            assert await b.cache.get_or_compute("c:1", [], 60.0, source.stats(1), Stats) == Stats(
                1, 1
            )
        assert source.computes == 2  # no shared tier: each node computed
        assert a.cache.statistics().redis.up is False  # type: ignore[union-attr]

        own_redis.append(await trio.to_thread.run_sync(restart_redis, own_redis[0]))
        await wait_until(lambda: all(node.cache.statistics().redis.up for node in (a, b)))  # type: ignore[union-attr]
        await a.cache.get_or_compute("c:2", [], 60.0, source.stats(2), Stats)
        await b.cache.get_or_compute("c:2", [], 60.0, source.stats(2), Stats)
        assert source.computes == 3  # b read a's value from Redis
        assert b.cache.statistics().redis.hits == 1  # type: ignore[union-attr]


async def test_a_node_that_rejoins_after_a_redis_outage_clears_its_memory_tier(
    own_redis: list[RunningRedis],
) -> None:
    source = Source()
    async with nodes(own_redis[0].url) as (a, b):
        await b.cache.get_or_compute("c:1", ["course:1"], 60.0, source.stats(1), Stats)
        rejoined = trio.Event()
        with b.bus.subscribe(CACHE_CHANNEL, lambda message: None, rejoined=rejoined.set):
            await trio.to_thread.run_sync(own_redis[0].stop)
            # Invalidations a sends now may never reach b.
            source.learners = 2
            await a.cache.invalidate("course:1")
            own_redis.append(await trio.to_thread.run_sync(restart_redis, own_redis[0]))
            with trio.fail_after(WAIT):
                await rejoined.wait()
        assert b.cache.statistics().clears == 1
        assert b.cache.statistics().memory.entries == 0
        stats = await b.cache.get_or_compute("c:1", ["course:1"], 60.0, source.stats(1), Stats)
        assert stats == Stats(1, 2)
