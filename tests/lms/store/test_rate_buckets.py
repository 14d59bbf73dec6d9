"""Token buckets in a real Redis: atomic under concurrent takes, the same answers as the
domain's TokenBucket, and keys that vanish once their bucket is full again."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio
import trio

from lms.domain.token_bucket import Limit, TokenBucket
from lms.store import bridge
from lms.store.rate_buckets import RedisBuckets, close_client, redis_client
from lms.store.redis_link import RedisUnavailable
from tests.services import pick_free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[tuple[redis.asyncio.Redis, ...]]:
    """Two clients, as two nodes have, each with its own connections."""
    async with bridge.open_bridge():
        pair = (redis_client(redis_url), redis_client(redis_url))
        try:
            yield pair
        finally:
            for client in pair:
                await close_client(client)


def bucket_name() -> str:
    """A bucket of this test's own: the session's Redis is shared."""
    return f"test-{uuid.uuid4().hex[:8]}"


async def test_concurrent_takes_from_two_nodes_get_exactly_the_capacity(
    clients: tuple[redis.asyncio.Redis, ...],
) -> None:
    limit = Limit(capacity=25, rate=1 / 3600)
    name = bucket_name()
    nodes = [RedisBuckets(client, limit, bucket=name) for client in clients]
    waits: list[float] = []

    async def take(buckets: RedisBuckets) -> None:
        waits.append(await buckets.take("client"))

    async with trio.open_nursery() as nursery:
        for n in range(100):
            nursery.start_soon(take, nodes[n % 2])
    assert len(waits) == 100
    assert waits.count(0.0) == 25
    # The 75 refused were told when a token comes: within one interval (144 s) of an hour.
    assert all(3600 - 144 < wait <= 3600 for wait in waits if wait > 0)


@pytest.mark.parametrize("rate", [0.5, 1.0, 4.0, 10.0])
async def test_takes_answer_as_the_domains_token_bucket_does(
    clients: tuple[redis.asyncio.Redis, ...], rate: float
) -> None:
    """A random run of takes at the caller's times (whole milliseconds; intervals whole
    microseconds), refusals and refills included, against `TokenBucket.take`."""
    clock = Clock()
    limit = Limit(capacity=3, rate=rate)
    buckets = RedisBuckets(clients[0], limit, bucket=bucket_name(), clock=clock)
    model = TokenBucket(limit, clock.now)
    steps = random.Random(f"rate-{rate}")
    for _ in range(60):
        clock.now += steps.randrange(0, 1500) / 1000
        assert await buckets.take("client") == pytest.approx(model.take(clock.now), abs=1e-9)


async def test_an_empty_bucket_refills_at_its_rate(
    clients: tuple[redis.asyncio.Redis, ...],
) -> None:
    clock = Clock()
    buckets = RedisBuckets(
        clients[0], Limit(capacity=2, rate=1.0), bucket=bucket_name(), clock=clock
    )
    assert [await buckets.take("a") for _ in range(2)] == [0.0, 0.0]
    assert await buckets.take("a") == pytest.approx(1.0)
    assert await buckets.take("b") == 0.0  # another key, another bucket
    clock.now += 0.25
    assert await buckets.take("a") == pytest.approx(0.75)
    clock.now += 0.75
    assert await buckets.take("a") == 0.0
    assert await buckets.take("a") == pytest.approx(1.0)


async def test_a_bucket_key_is_namespaced_and_expires_when_the_bucket_is_full_again(
    clients: tuple[redis.asyncio.Redis, ...], redis_url: str
) -> None:
    name = bucket_name()
    buckets = RedisBuckets(
        clients[0], Limit(capacity=3, rate=3 / 60), bucket=name, namespace="deployment/db:"
    )
    await buckets.take("198.51.100.7")
    await buckets.take("198.51.100.7")
    key = f"lms:rate:deployment/db:{name}:198.51.100.7"
    assert buckets.key("198.51.100.7") == key
    with redis.Redis.from_url(redis_url) as raw:
        # Two tokens of 20 s each taken: full again in 40 s, and gone then.
        assert 39_000 < raw.pttl(key) <= 40_000


async def test_an_unreachable_redis_is_redis_unavailable() -> None:
    async with bridge.open_bridge():
        client = redis_client(f"redis://127.0.0.1:{pick_free_port()}/0")
        try:
            buckets = RedisBuckets(client, Limit(capacity=1, rate=1.0), bucket="unreachable")
            with pytest.raises(RedisUnavailable):
                await buckets.take("client")
        finally:
            await close_client(client)
