"""Token buckets in Redis, shared by every node: a `BucketStore` (lms/http/rate_limits.py).

Theory of operation
-------------------
A bucket is one key holding `full_at`, the moment it will be full again, as
`lms/domain/token_bucket.py` keeps it (GCRA), in whole microseconds: a Lua number is a double,
exact to 2**53, which holds microseconds since 1970 but not nanoseconds. A take is one script,
so it is atomic (Redis runs a script alone) and one round trip; `register_script` sends it by
its SHA (EVALSHA) and loads it once, when Redis first says it does not know it.

The script reads Redis's own clock (TIME) unless the caller passes the time: every node takes
from the same buckets, and Redis's is the one clock they all see the same. Node clocks are not
comparable (monotonic clocks start at each machine's boot; wall clocks drift apart), and a
node whose clock ran ahead would refill every bucket early. The caller's time is for tests,
which move time on without waiting for it.

Each key expires when its bucket is full again (`full_at`), as an absent key reads as a full
bucket: idle buckets vanish by themselves, and Redis holds only the keys limited lately.

Keys are `lms:rate:<namespace><bucket>:<key>`: the deployment's namespace (as the cache tier's,
`lms/store/cache_tier.py`), then which limit, then whom it counts.

Every call crosses the bridge once and raises `RedisUnavailable` for any failure; the caller
decides what to do without Redis (`lms/http/rate_limits.py` falls back to memory).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from lms.domain.token_bucket import Limit
from lms.store import bridge
from lms.store.redis_link import RedisUnavailable

_PREFIX = "lms:rate:"
_US = 1_000_000

# KEYS: the bucket. ARGV: one token's interval and the burst (capacity - 1 intervals), in us;
# the time in us, or "" for Redis's own. Returns 0 when a token was taken, else the us until
# one will be there. Mirrors TokenBucket.take.
_TAKE = """
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[3])
end
local start = tonumber(redis.call('GET', KEYS[1]) or 0)
if start < now then start = now end
local wait = start - now - tonumber(ARGV[2])
if wait > 0 then return wait end
local full_at = start + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', full_at), 'PX',
  math.max(1, math.ceil((full_at - now) / 1000)))
return 0
"""


def redis_client(url: str, *, timeout: float = 0.5) -> redis.asyncio.Redis:
    """A client that fails fast, for buckets: a login waiting on a hung Redis waits for
    nothing the memory fallback could not answer at once. No retries inside redis-py (the
    caller decides when to try Redis again). Connects on first use."""
    return redis.asyncio.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


async def close_client(client: redis.asyncio.Redis) -> None:
    await bridge.call(client.aclose)


class RedisBuckets:
    """The buckets of one limit (`bucket` names it), in Redis. `clock`: the time in seconds
    to take at, for tests; None (the default) takes at Redis's own time."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        limit: Limit,
        *,
        bucket: str,
        namespace: str = "",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._take = client.register_script(_TAKE)
        self._prefix = f"{_PREFIX}{namespace}{bucket}:"
        self._interval_us = math.ceil(limit.interval_ns / 1000)
        self._burst_us = (limit.capacity - 1) * self._interval_us
        self._clock = clock

    def key(self, key: str) -> str:
        """The Redis key of `key`'s bucket."""
        return self._prefix + key

    async def take(self, key: str) -> float:
        now = "" if self._clock is None else str(round(self._clock() * _US))
        args: list[int | str] = [self._interval_us, self._burst_us, now]
        try:
            wait_us = await bridge.call(self._take, keys=[self._prefix + key], args=args)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise RedisUnavailable(f"Redis rate buckets: {exc!r}") from exc
        return int(wait_us) / _US
