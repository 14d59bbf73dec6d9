"""The cache's Redis tier: tagged entries shared by every node, invalidated by tag versions.

Theory of operation
-------------------
Every tag (`course:7`) has a version in Redis, a random token, and every entry is stored
stamped with the versions of its tags as they were when its value was computed:
``<version>,<version>...\\n<value bytes>``, the value being the same msgspec JSON bytes the
memory tier holds. Invalidating tags gives each a new token, so every entry stamped with an
old one stops matching, on every node at once, without finding the entries.

A read is one round trip: a script reads the tags' versions and the entry (and its time to
live), and the stamp is compared here. On a miss the same answer carries the versions to
stamp the value the caller goes on to compute. Versions are read *before* the value is
computed, so a value computed from data read before an invalidation is stamped with the old
versions and never matches afterwards, even if it is written after the invalidation. (Per-tag
sets of keys would also read in one round trip, a GET, but cannot tell such a late write from
a fresh one, and their sets must be cleaned as entries expire.)

A tag with no version gets one, made by the read itself, so an entry is never stamped with
"no version": if Redis loses a version key (expiry, eviction under maxmemory, a restart),
the next read makes a new token and the entries stamped with the old one simply miss. Version
keys live `max_ttl`, the longest an entry may live, renewed by each invalidation.

Every call here crosses the bridge once, and raises `RedisUnavailable` for any failure (down,
slow past the timeout, refusing writes): the caller (`lms/cache/redis_tier.py`) treats the
tier as gone for a while and answers without it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from lms.store import bridge
from lms.store.redis_link import RedisUnavailable

T = TypeVar("T")

_ENTRY = "lms:cache:e:"
_VERSION = "lms:cache:v:"
# A version every entry is stamped with, as if every entry carried one more tag: `clear`
# renews it, and every entry misses, without a SCAN.
_EVERYTHING = "lms:cache:all"

# KEYS: the entry, then the version keys (everything's, then the tags'). ARGV: a fresh token
# for a version key that is missing, and how long a version lives (ms). Returns the entry (or
# false), its time to live in ms, and the versions.
_READ = """
local found = {false, 0}
for i = 2, #KEYS do
  local version = redis.call('GET', KEYS[i])
  if not version then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    version = ARGV[1]
  end
  found[i + 1] = version
end
local entry = redis.call('GET', KEYS[1])
if entry then
  found[1] = entry
  found[2] = redis.call('PTTL', KEYS[1])
end
return found
"""


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a read found.

    Attributes:
      value: the stored value, or None when absent or stamped with older tag versions.
      ttl: seconds the value has left to live (0 without a value).
      stamp: the tags' current versions, to store a value computed now with (`put`).
    """

    value: bytes | None
    ttl: float
    stamp: bytes


class CacheTierStore:
    """Tagged entries in Redis. `max_ttl` bounds every entry's life and is how long a tag
    version lives. `namespace` prefixes every key: deployments (or test databases) sharing
    one Redis must not read each other's entries, since their ids name different rows."""

    def __init__(self, client: redis.asyncio.Redis, *, max_ttl: float, namespace: str = "") -> None:
        self._client = client
        self._max_ttl_ms = int(max_ttl * 1000)
        self._read = client.register_script(_READ)
        self._entry = _ENTRY + namespace
        self._version = _VERSION + namespace
        self._everything = f"{_EVERYTHING}:{namespace}"

    @classmethod
    def from_url(
        cls, url: str, *, max_ttl: float, timeout: float = 0.5, namespace: str = ""
    ) -> CacheTierStore:
        """A store on its own client, which fails fast: a read that waits on a hung Redis
        holds up a request that could have been computed; no retries inside redis-py (the
        caller decides when to try again). Connects on first use."""
        client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, max_ttl=max_ttl, namespace=namespace)

    async def get(self, key: str, tags: Sequence[str]) -> Lookup:
        """The entry under `key` if it was stamped with the current versions of `tags`, and
        those versions. Pass the same tags, in the same order, to `get` and to `put`."""
        keys = [self._entry + key, self._everything, *(self._version + tag for tag in tags)]
        token = os.urandom(8).hex()
        entry, ttl_ms, *versions = await _cross(
            self._read, keys=keys, args=[token, self._max_ttl_ms]
        )
        stamp = b",".join(versions)
        if entry is None:
            return Lookup(None, 0.0, stamp)
        stored_stamp, _, value = entry.partition(b"\n")
        if stored_stamp != stamp:
            return Lookup(None, 0.0, stamp)
        return Lookup(value, max(ttl_ms, 0) / 1000, stamp)

    async def put(self, key: str, value: bytes, stamp: bytes, ttl: float) -> None:
        """Store `value` under `key` for `ttl` seconds (at most `max_ttl`), stamped with the
        versions a `get` returned before the value was computed."""
        ttl_ms = max(1, min(int(ttl * 1000), self._max_ttl_ms))
        await _cross(self._client.set, self._entry + key, stamp + b"\n" + value, px=ttl_ms)

    async def invalidate(self, tags: Sequence[str]) -> None:
        """Give each of `tags` a new version: every entry stamped with an old one misses."""
        if tags:
            versions = [self._version + tag for tag in tags]
            await _cross(
                _set_versions, self._client, versions, os.urandom(8).hex(), self._max_ttl_ms
            )

    async def clear(self) -> None:
        """Make every entry miss, whatever its tags."""
        await _cross(
            _set_versions, self._client, [self._everything], os.urandom(8).hex(), self._max_ttl_ms
        )

    async def ping(self) -> None:
        await _cross(self._client.ping)

    async def close(self) -> None:
        await bridge.call(self._client.aclose)


async def _cross(fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """`bridge.call`, with every Redis failure as `RedisUnavailable`."""
    try:
        return await bridge.call(fn, *args, **kwargs)
    except (redis.exceptions.RedisError, OSError) as exc:
        raise RedisUnavailable(f"Redis cache tier: {exc!r}") from exc


# Runs on the asyncio side of the bridge.


async def _set_versions(
    client: redis.asyncio.Redis, keys: Sequence[str], token: str, ttl_ms: int
) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.set(key, token, px=ttl_ms)
        await pipe.execute()
