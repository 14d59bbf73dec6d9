"""The cache's Redis tier over a real Redis: tag versions decide what is current."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from lms.store import bridge
from lms.store.cache_tier import CacheTierStore
from lms.store.redis_link import RedisUnavailable
from tests.services import pick_free_port


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[CacheTierStore]:
    async with bridge.open_bridge():
        tier = CacheTierStore.from_url(redis_url, max_ttl=60.0)
        try:
            yield tier
        finally:
            await tier.close()


def names(*names: str) -> list[str]:
    """Keys and tags of this test's own: the session's Redis is shared."""
    run = uuid.uuid4().hex[:8]
    return [f"{name}:{run}" for name in names]


async def test_a_value_stored_with_the_versions_read_before_is_found_with_its_ttl(
    store: CacheTierStore,
) -> None:
    key, course, user = names("key", "course", "user")
    miss = await store.get(key, [course, user])
    assert miss.value is None
    await store.put(key, b'{"a":1}', miss.stamp, ttl=30.0)
    hit = await store.get(key, [course, user])
    assert hit.value == b'{"a":1}'
    assert 0 < hit.ttl <= 30.0
    assert hit.stamp == miss.stamp


async def test_invalidating_a_tag_makes_its_entries_miss_and_leaves_the_others(
    store: CacheTierStore,
) -> None:
    first, second, course, other_course = names("first", "second", "course", "other")
    for key, tag in ((first, course), (second, other_course)):
        await store.put(key, b"1", (await store.get(key, [tag])).stamp, ttl=30.0)
    await store.invalidate([course])
    assert (await store.get(first, [course])).value is None
    assert (await store.get(second, [other_course])).value == b"1"


async def test_a_value_computed_before_an_invalidation_never_matches_even_written_after(
    store: CacheTierStore,
) -> None:
    key, course = names("key", "course")
    before = await store.get(key, [course])  # the versions a slow computation starts from
    await store.invalidate([course])  # a write commits while it computes
    await store.put(key, b"old", before.stamp, ttl=30.0)
    assert (await store.get(key, [course])).value is None


async def test_a_lost_version_key_makes_its_entries_miss_rather_than_revive_old_ones(
    store: CacheTierStore, redis_url: str
) -> None:
    key, course = names("key", "course")
    await store.put(key, b"1", (await store.get(key, [course])).stamp, ttl=30.0)
    with redis.Redis.from_url(redis_url) as raw:
        assert raw.delete(f"lms:cache:v:{course}") == 1  # evicted, expired, or Redis restarted
    assert (await store.get(key, [course])).value is None


async def test_clear_makes_every_entry_miss_whatever_its_tags(store: CacheTierStore) -> None:
    key, untagged, course = names("key", "untagged", "course")
    await store.put(key, b"1", (await store.get(key, [course])).stamp, ttl=30.0)
    await store.put(untagged, b"2", (await store.get(untagged, [])).stamp, ttl=30.0)
    await store.clear()
    assert (await store.get(key, [course])).value is None
    assert (await store.get(untagged, [])).value is None


async def test_an_unreachable_redis_is_reported_as_unavailable() -> None:
    async with bridge.open_bridge():
        tier = CacheTierStore.from_url(f"redis://127.0.0.1:{pick_free_port()}/0", max_ttl=60.0)
        for call in (tier.ping(), tier.get("key", ["tag"]), tier.invalidate(["tag"])):
            with pytest.raises(RedisUnavailable):
                await call
        await tier.close()
