"""The two-tier cache: a node's memory tier in front of the Redis tier, tags invalidated on
every node through the Bus.

Theory of operation
-------------------
`get_or_compute(key, tags, ttl, compute, type_)` answers from the memory tier, else from one
flight per key (`SingleFlight`): the flight reads the Redis tier (one round trip, which also
returns the tags' versions), and on a miss awaits `compute()`, encodes the value (msgspec
JSON), stores it stamped with those versions in Redis and then in memory, both with one
jittered expiry. Every caller decodes the bytes into `type_`, a hit or not, so what a caller
gets never depends on which tier answered. A caller that only sends the answer on
(`get_or_compute_encoded`) takes those bytes as they are: decoding a large answer to encode
it again costs more than finding it. Without Redis (none configured, or down) the memory
tier works alone and misses compute.

`invalidate(*tags)` renews the tags' versions in Redis first, then drops the tags' entries
from this node's memory tier and marks this node's flights for them stale (so what they
computed from older data is not stored), and last publishes one `TagsInvalidated` on the Bus,
whose arrival does the same drop on every other node. In that order, a node that hears the
message and misses reads the new versions, never an entry the invalidation outdated. Once
`invalidate` returns, this node and Redis answer fresh; other nodes do within the Bus's
delay (a few ms over Redis pub/sub).

A node whose Bus link comes back after an outage may have missed invalidations: the Bus's
`rejoined` hook clears its memory tier (and marks every flight stale). Redis itself missed
nothing that reached it; what this node invalidated while Redis was away is sent before
the Redis tier is used again (`RedisTier`).

Errors from `compute` reach every caller of that flight and are not cached.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
import structlog
import trio

from actors.bus import Bus
from lms.cache.memory_tier import MemoryStatistics, MemoryTier
from lms.cache.redis_tier import RedisTier, RedisTierStatistics
from lms.cache.request_counts import RequestCounts
from lms.cache.single_flight import Flight, SingleFlight, SingleFlightStatistics
from lms.cache.ttl import jittered
from proto.cache import CACHE_CHANNEL, TagsInvalidated
from proto.live import LiveMessage

T = TypeVar("T")

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Computation(Generic[T]):
    """One `get_or_compute_encoded` call, as data: what `warm` takes."""

    key: str
    tags: Sequence[str]
    ttl: float
    compute: Callable[[], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    """A snapshot of the cache.

    Attributes:
      memory, redis: each tier's (None without Redis).
      flights: single-flight (`shared`: misses answered by another caller's computation).
      computes: values computed (misses in every tier).
      invalidations_sent: `invalidate` calls on this node.
      invalidations_heard: `TagsInvalidated` messages from other nodes.
      clears: memory tier cleared after a Bus rejoin.
      most_requested: the keys asked for most on this node, with their counts.
    """

    memory: MemoryStatistics
    redis: RedisTierStatistics | None
    flights: SingleFlightStatistics
    computes: int
    invalidations_sent: int
    invalidations_heard: int
    clears: int
    most_requested: list[tuple[str, int]]


class Cache:
    """Start with ``await nursery.start(cache.run)``: it listens to the Bus and brings the
    Redis tier back after outages until cancelled. `get_or_compute` and `invalidate` may be
    called before (no other node hears of it then).

    Args:
      max_bytes: the memory tier's bound (values and keys).
      bus: the node's Bus; without one, invalidations stay on this node.
      redis: the Redis tier; without one, the memory tier alone.
      jitter: every ttl is shortened by up to this share of itself, at random.
      draw: the random numbers in [0, 1) the jitter is drawn from.
    """

    def __init__(
        self,
        *,
        max_bytes: int,
        bus: Bus | None = None,
        redis: RedisTier | None = None,
        jitter: float = 0.1,
        draw: Callable[[], float] = random.random,
    ) -> None:
        jittered(1.0, jitter, draw)  # checks `jitter` now rather than on the first miss
        self._memory = MemoryTier(max_bytes)
        self._flights: SingleFlight[bytes] = SingleFlight()
        self._bus = bus
        self._redis = redis
        self._jitter = jitter
        self._draw = draw
        self._encoder = msgspec.json.Encoder()
        self._decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
        self._requests = RequestCounts()
        self._computes = 0
        self._sent = 0
        self._heard = 0
        self._clears = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with ExitStack() as stack:
            if self._bus is not None:
                stack.enter_context(
                    self._bus.subscribe(CACHE_CHANNEL, self._on_message, rejoined=self.clear)
                )
            if self._redis is None:
                task_status.started()
                await trio.sleep_forever()
            await self._redis.run(task_status=task_status)

    async def get_or_compute(
        self,
        key: str,
        tags: Iterable[str],
        ttl: float,
        compute: Callable[[], Awaitable[T]],
        type_: object,
    ) -> T:
        """The value under `key`, from a tier or else `await compute()` (once for all
        concurrent callers on this node), kept at most `ttl` seconds and dropped whenever one
        of `tags` is invalidated. `compute`'s value must encode as JSON (msgspec) and decode
        as `type_` (any type msgspec decodes, a union such as `User | None` too, which is why
        it is not a `type[T]`); what is returned is always that decoding."""
        encoded = await self.get_or_compute_encoded(key, tags, ttl, compute)
        return self._decoder(type_).decode(encoded)

    async def get_or_compute_encoded(
        self,
        key: str,
        tags: Iterable[str],
        ttl: float,
        compute: Callable[[], Awaitable[Any]],
    ) -> bytes:
        """As `get_or_compute`, but the value as the JSON kept in the tiers, undecoded: the
        same bytes whichever tier answered, or the encoding a miss just stored."""
        self._requests.count(key)
        value = self._memory.get(key, trio.current_time())
        if value is None:
            tag_list = sorted(set(tags))

            async def fill(flight: Flight[bytes]) -> bytes:
                return await self._fill(flight, key, tag_list, ttl, compute)

            value = await self._flights.run(key, tag_list, fill)
        return value

    async def invalidate(self, *tags: str) -> None:
        """Drop the entries carrying any of `tags`: in Redis and here once this returns, on
        other nodes when the Bus brings them the news."""
        if not tags:
            return
        if self._redis is not None:
            await self._redis.invalidate(tags)
        self._drop(tags)
        if self._bus is not None:
            self._bus.publish(CACHE_CHANNEL, TagsInvalidated(list(tags)), here=False)
        self._sent += 1

    async def warm(self, computations: Iterable[Computation[Any]]) -> int:
        """Fill the tiers with `computations`, one after another (start-up should not crowd
        the database); one that fails is logged and skipped. Returns how many were cached."""
        warmed = 0
        for c in computations:
            try:
                await self.get_or_compute_encoded(c.key, c.tags, c.ttl, c.compute)
            except Exception as exc:
                log.warning("cache_warm_failed", key=c.key, error=repr(exc))
            else:
                warmed += 1
        return warmed

    def most_requested(self, n: int, prefix: str = "") -> list[str]:
        """The `n` keys starting with `prefix` asked for most on this node since it started."""
        return [key for key, _ in self._requests.most_requested(n, prefix)]

    def clear(self) -> None:
        """Forget this node's memory tier (Redis keeps its entries)."""
        dropped = self._memory.clear()
        self._flights.invalidate()
        self._clears += 1
        log.info("cache_memory_cleared", entries=dropped)

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(
            memory=self._memory.statistics(),
            redis=None if self._redis is None else self._redis.statistics(),
            flights=self._flights.statistics(),
            computes=self._computes,
            invalidations_sent=self._sent,
            invalidations_heard=self._heard,
            clears=self._clears,
            most_requested=self._requests.most_requested(10),
        )

    async def _fill(
        self,
        flight: Flight[bytes],
        key: str,
        tags: list[str],
        ttl: float,
        compute: Callable[[], Awaitable[Any]],
    ) -> bytes:
        lifetime = jittered(ttl, self._jitter, self._draw)
        redis = self._redis
        lookup = None if redis is None else await redis.get(key, tags)
        if lookup is not None and lookup.value is not None:
            value = lookup.value
            lifetime = min(lifetime, lookup.ttl)
        else:
            value = self._encoder.encode(await compute())
            self._computes += 1
            if redis is not None and lookup is not None and not flight.stale:
                await redis.put(key, value, lookup.stamp, lifetime)
        if not flight.stale:
            self._memory.put(key, value, tags, trio.current_time() + lifetime)
        return value

    def _decoder(self, type_: Any) -> msgspec.json.Decoder[Any]:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.json.Decoder(type_)
        return decoder

    def _on_message(self, message: LiveMessage) -> None:
        if isinstance(message, TagsInvalidated):
            self._heard += 1
            self._drop(message.tags)

    def _drop(self, tags: Iterable[str]) -> None:
        names = set(tags)
        self._memory.invalidate(names)
        self._flights.invalidate(names)
