"""Rate limits at the edge: token buckets per key (a client address, an e-mail address), kept
by a `BucketStore`.

`MemoryBuckets` keeps them in this process: limits are per node, which is what one node needs.
With Redis configured, the nodes share buckets in it (`lms/store/rate_buckets.py`, atomic in
one round trip), falling back to memory while Redis is down (`FailOpenBuckets`).

The memory map is bounded: past `max_keys` the least recently used bucket is forgotten, which
forgives that key at worst (a forgotten bucket starts full), so no stream of new keys can grow
the process.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import structlog
import trio
from quart import has_websocket_context, request, websocket

from lms.config import Settings
from lms.domain.client_address import Network, client_address
from lms.domain.edge_limits import EdgeLimits
from lms.domain.token_bucket import Limit, TokenBucket
from lms.errors import RateLimited
from lms.store.database import Database
from lms.store.deployment import deployment_id
from lms.store.rate_buckets import RedisBuckets, close_client, redis_client
from lms.store.redis_link import RedisUnavailable

log = structlog.get_logger()


class BucketStore(Protocol):
    async def take(self, key: str) -> float:
        """Take a token from `key`'s bucket: 0.0 when taken, else the seconds until one will
        be there (nothing was taken)."""
        ...


class MemoryBuckets:
    """`BucketStore` in a bounded map, least recently used first out."""

    def __init__(
        self,
        limit: Limit,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    async def take(self, key: str) -> float:
        now = self._clock()
        bucket = self._buckets.pop(key, None) or TokenBucket(self._limit, now)
        wait = bucket.take(now)
        self._buckets[key] = bucket
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        # A full bucket is as good as a new one: drop those among the least recently used, so
        # the map holds the keys active lately rather than max_keys of them. (The loop stops at
        # the latest at the bucket just taken from, which is never full.)
        while next(iter(self._buckets.values())).is_full(now):
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


async def limit(store: BucketStore, key: str, what: str) -> None:
    """Count a request against `key` in `store`.

    Raises:
      RateLimited: the bucket is empty; the message names `what` was limited.
    """
    wait = await store.take(key)
    if wait > 0:
        raise RateLimited(
            f"too many {what}; try again in {max(1, round(wait))} s", retry_after=wait
        )


class RedisOutage:
    """Whether the buckets skip Redis now, shared by every limit of a node: for `retry_after`
    seconds after a failure, takes are answered from memory at once (not each after a
    timeout); then the next take tries Redis again. Logs once when Redis fails and once when
    it answers again."""

    def __init__(
        self, retry_after: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._retry_after = retry_after
        self._clock = clock
        self._down = False
        self._retry_at = 0.0

    def skipping(self) -> bool:
        return self._down and self._clock() < self._retry_at

    def failed(self, error: RedisUnavailable) -> None:
        self._retry_at = self._clock() + self._retry_after
        if not self._down:
            self._down = True
            log.warning("rate_limits_redis_down", error=str(error), limits="per node")

    def answered(self) -> None:
        if self._down:
            self._down = False
            log.info("rate_limits_redis_up")


class FailOpenBuckets:
    """`BucketStore` in Redis, shared by the nodes, while Redis answers; in this node's memory
    while it does not.

    Fails open, to the node's own buckets rather than refusing requests: Redis holds no truth
    (PostgreSQL does), and an outage of it must not stop every login and upload. The limits
    still hold meanwhile, per node: across N nodes a client gets at most N times its limit.
    """

    def __init__(self, shared: BucketStore, local: BucketStore, outage: RedisOutage) -> None:
        self._shared = shared
        self._local = local
        self._outage = outage

    async def take(self, key: str) -> float:
        if not self._outage.skipping():
            try:
                wait = await self._shared.take(key)
            except RedisUnavailable as error:
                self._outage.failed(error)
            else:
                self._outage.answered()
                return wait
        return await self._local.take(key)


def _memory_buckets(_: str, limit: Limit) -> BucketStore:
    return MemoryBuckets(limit)


# Makes the store of one limit, given its name and its limit.
Buckets = Callable[[str, Limit], BucketStore]


@dataclass(frozen=True)
class RateLimits:
    """The node's limits, a store for each thing limited, and whom a request is from. Names
    as in `EdgeLimits` (lms/domain/edge_limits.py), and the password reset's own two."""

    reset_per_address: BucketStore
    reset_per_ip: BucketStore
    login_per_address: BucketStore
    login_per_ip: BucketStore
    register_per_ip: BucketStore
    refresh_per_ip: BucketStore
    upload_per_user: BucketStore
    upload_per_ip: BucketStore
    socket_per_user: BucketStore
    socket_per_ip: BucketStore
    announce_per_user: BucketStore
    announce_per_ip: BucketStore
    trusted_proxies: tuple[Network, ...]

    @classmethod
    def build(cls, settings: Settings, buckets: Buckets = _memory_buckets) -> RateLimits:
        """The limits `settings` name, each in the store `buckets` makes for it (this node's
        memory by default)."""
        limits = {
            "reset_per_address": settings.reset_limit_per_address,
            "reset_per_ip": settings.reset_limit_per_ip,
            **{name: getattr(settings.rate_limits, name) for name in EdgeLimits.names()},
        }
        stores = {name: buckets(name, limit) for name, limit in limits.items()}
        return cls(**stores, trusted_proxies=settings.trusted_proxies)

    def client(self) -> str:
        """The current request's (or WebSocket's) client address (see
        `lms.domain.client_address`)."""
        asking = websocket if has_websocket_context() else request
        return client_address(
            asking.remote_addr or "", asking.headers.get("X-Forwarded-For"), self.trusted_proxies
        )

    async def per_client(self, store: BucketStore, what: str) -> None:
        """`limit` the current request's client address in `store`."""
        await limit(store, self.client(), what)

    async def per_user(self, store: BucketStore, user_id: int, what: str) -> None:
        """`limit` the account `user_id` in `store`."""
        await limit(store, str(user_id), what)


@asynccontextmanager
async def open_rate_limits(settings: Settings, db: Database) -> AsyncIterator[RateLimits]:
    """The node's limits: in Redis when configured (every node takes from the same buckets,
    keys namespaced by the deployment like the cache tier's), failing open to memory (see
    `FailOpenBuckets`); else in memory, per node. Closes its Redis client on the way out."""
    if settings.redis_url is None:
        yield RateLimits.build(settings)
        return
    namespace = await db.connection(deployment_id)
    client = redis_client(settings.redis_url)
    outage = RedisOutage()

    def shared(name: str, limit: Limit) -> BucketStore:
        in_redis = RedisBuckets(client, limit, bucket=name, namespace=f"{namespace}:")
        return FailOpenBuckets(in_redis, MemoryBuckets(limit), outage)

    try:
        yield RateLimits.build(settings, shared)
    finally:
        with trio.CancelScope(shield=True):
            await close_client(client)
