"""The Redis tier through outages: skipped while down, back by itself, nothing missed."""

from __future__ import annotations

import redis
import structlog
import trio

from lms.cache.redis_tier import RedisTier
from lms.store import bridge
from lms.store.cache_tier import CacheTierStore
from tests.lms.cache.conftest import wait_until
from tests.redis_restart import restart_redis
from tests.services import RunningRedis


def tier_on(url: str, **options: int) -> RedisTier:
    store = CacheTierStore.from_url(url, max_ttl=600.0, timeout=0.2)
    return RedisTier(store, backoff_initial=0.02, backoff_max=0.1, **options)


async def test_while_redis_is_down_reads_answer_at_once_and_the_tier_comes_back_by_itself(
    own_redis: list[RunningRedis],
) -> None:
    async with bridge.open_bridge(), trio.open_nursery() as nursery:
        tier = tier_on(own_redis[0].url)
        await nursery.start(tier.run)
        stamp = (await tier.get("k", ["course:1"])).stamp  # type: ignore[union-attr]
        await tier.put("k", b"1", stamp, ttl=60.0)

        await trio.to_thread.run_sync(own_redis[0].stop)
        with structlog.testing.capture_logs() as logs:
            assert await tier.get("k", ["course:1"]) is None  # the failure marks it down
            with trio.fail_after(0.05):  # no call waits on a dead Redis any more
                for _ in range(20):
                    assert await tier.get("k", ["course:1"]) is None
                    await tier.put("k", b"2", stamp, ttl=60.0)
            assert not tier.statistics().up
            own_redis.append(await trio.to_thread.run_sync(restart_redis, own_redis[0]))
            await wait_until(lambda: tier.statistics().up)
        events = [entry["event"] for entry in logs]
        assert events == ["cache_redis_down", "cache_redis_up"]  # once each, however many tries

        lookup = await tier.get("k", ["course:1"])  # Redis restarted empty: a miss, from Redis
        assert lookup is not None
        assert lookup.value is None
        stats = tier.statistics()
        assert (stats.outages, stats.hits, stats.misses) == (1, 0, 2)
        nursery.cancel_scope.cancel()


async def test_what_this_node_invalidated_while_redis_was_away_misses_once_it_is_back(
    own_redis: list[RunningRedis],
) -> None:
    url = own_redis[0].url
    async with bridge.open_bridge(), trio.open_nursery() as nursery:
        tier = tier_on(url)
        await nursery.start(tier.run)
        for key, tag in (("stale", "course:1"), ("kept", "course:2")):
            stamp = (await tier.get(key, [tag])).stamp  # type: ignore[union-attr]
            await tier.put(key, b"1", stamp, ttl=60.0)
        # Redis stops answering this node's commands but keeps its data (a partition, not a
        # restart), for long enough that the tier sees it down, then answers again.
        with redis.Redis.from_url(url) as admin:
            admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        assert await tier.get("stale", ["course:1"]) is None
        await tier.invalidate(["course:1"])
        assert tier.statistics().pending == 1
        await wait_until(lambda: tier.statistics().up)
        assert tier.statistics().pending == 0
        stale = await tier.get("stale", ["course:1"])
        kept = await tier.get("kept", ["course:2"])
        assert stale is not None
        assert stale.value is None
        assert kept is not None
        assert kept.value == b"1"
        nursery.cancel_scope.cancel()


async def test_past_the_pending_limit_every_entry_misses_once_redis_is_back(
    own_redis: list[RunningRedis],
) -> None:
    url = own_redis[0].url
    async with bridge.open_bridge(), trio.open_nursery() as nursery:
        tier = tier_on(url, pending_limit=2)
        await nursery.start(tier.run)
        stamp = (await tier.get("other", ["course:9"])).stamp  # type: ignore[union-attr]
        await tier.put("other", b"1", stamp, ttl=60.0)
        with redis.Redis.from_url(url) as admin:
            admin.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        await tier.invalidate(["course:1", "course:2", "course:3"])
        assert tier.statistics().pending == 0  # too many to keep: everything is suspect
        await wait_until(lambda: tier.statistics().up)
        lookup = await tier.get("other", ["course:9"])
        assert lookup is not None
        assert lookup.value is None
        nursery.cancel_scope.cancel()
