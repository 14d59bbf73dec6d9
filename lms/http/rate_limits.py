"""Rate limits at the edge: token buckets per key (a client address, an e-mail address), kept
by a `BucketStore`.

`MemoryBuckets` keeps them in this process: limits are per node, which is what one node needs
and what several nodes get until a shared store (Redis, atomic in one round trip) implements the
same `take`. Its map is bounded: past `max_keys` the least recently used bucket is forgotten,
which forgives that key at worst (a forgotten bucket starts full), so no stream of new keys can
grow the process.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from quart import request

from lms.config import Settings
from lms.domain.client_address import Network, client_address
from lms.domain.token_bucket import Limit, TokenBucket
from lms.errors import RateLimited


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


@dataclass(frozen=True)
class RateLimits:
    """The node's limits, a store for each thing limited, and whom a request is from."""

    reset_per_address: BucketStore
    reset_per_ip: BucketStore
    trusted_proxies: tuple[Network, ...]

    @classmethod
    def in_memory(cls, settings: Settings) -> RateLimits:
        return cls(
            reset_per_address=MemoryBuckets(settings.reset_limit_per_address),
            reset_per_ip=MemoryBuckets(settings.reset_limit_per_ip),
            trusted_proxies=settings.trusted_proxies,
        )

    def client(self) -> str:
        """The current request's client address (see `lms.domain.client_address`)."""
        return client_address(
            request.remote_addr or "", request.headers.get("X-Forwarded-For"), self.trusted_proxies
        )
