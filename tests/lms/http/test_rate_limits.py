"""The memory bucket store: a bucket per key, bounded however many keys come."""

import pytest

from lms.domain.token_bucket import Limit
from lms.errors import RateLimited
from lms.http.rate_limits import MemoryBuckets, limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_each_key_has_its_own_bucket() -> None:
    buckets = MemoryBuckets(Limit(capacity=2, rate=1.0), clock=Clock())
    assert [await buckets.take("a") for _ in range(2)] == [0.0, 0.0]
    assert await buckets.take("a") == pytest.approx(1.0)
    assert await buckets.take("b") == 0.0


async def test_no_stream_of_new_keys_grows_the_map_past_its_bound() -> None:
    buckets = MemoryBuckets(Limit(capacity=1, rate=0.001), max_keys=100, clock=Clock())
    for n in range(10_000):
        await buckets.take(f"client-{n}")
    assert len(buckets) == 100


async def test_the_least_recently_used_key_is_the_one_forgotten() -> None:
    buckets = MemoryBuckets(Limit(capacity=1, rate=0.001), max_keys=2, clock=Clock())
    await buckets.take("old")
    await buckets.take("busy")
    await buckets.take("busy")  # refused, and now the most recently used
    await buckets.take("new")
    assert await buckets.take("busy") > 0  # still limited: kept
    assert await buckets.take("old") == 0.0  # forgotten, so full again


async def test_buckets_that_refilled_are_dropped() -> None:
    clock = Clock()
    buckets = MemoryBuckets(Limit(capacity=1, rate=1.0), clock=clock)
    for n in range(50):
        await buckets.take(f"client-{n}")
    clock.now += 2
    await buckets.take("later")
    assert len(buckets) == 1


async def test_an_empty_bucket_is_a_rate_limited_error_saying_when_to_retry() -> None:
    buckets = MemoryBuckets(Limit(capacity=1, rate=1 / 30), clock=Clock())
    await limit(buckets, "a", "password reset requests")
    with pytest.raises(RateLimited, match="too many password reset requests; try again in 30 s"):
        await limit(buckets, "a", "password reset requests")
