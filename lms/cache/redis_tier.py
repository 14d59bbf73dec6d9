"""The Redis tier as the cache sees it: used while up, skipped while down, back by itself.

Theory of operation
-------------------
The tier starts up. The first failed call (Redis down, slow past the store's timeout,
refusing writes) marks it down, logs once, and wakes `run`, which pings with exponential
backoff. While down, reads answer None at once (the caller computes) and writes are skipped,
so no request waits on a dead Redis; invalidations are kept (`pending_limit` tags; past that,
every entry) and sent before the tier is marked up again, so Redis never serves an entry this
node invalidated during the outage. Marking up logs once. Entries written by a computation
that began before an outage and ends after it are safe: they carry the tag versions read
before (see `lms/store/cache_tier.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
import trio

from lms.store.cache_tier import CacheTierStore, Lookup
from lms.store.redis_link import RedisUnavailable

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class RedisTierStatistics:
    """A snapshot of the Redis tier.

    Attributes:
      up: whether reads and writes go to Redis now.
      hits, misses: reads that found a current entry, and not (reads skipped while down are
          not counted: the memory tier's misses and the cache's computes show them).
      errors: calls that failed (each outage starts with one or more).
      outages: times the tier went down.
      pending: tags invalidated while down, waiting to be sent.
    """

    up: bool
    hits: int
    misses: int
    errors: int
    outages: int
    pending: int


class RedisTier:
    """Start with ``await nursery.start(tier.run)``; it closes the store when cancelled."""

    def __init__(
        self,
        store: CacheTierStore,
        *,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        pending_limit: int = 10_000,
    ) -> None:
        self._store = store
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._pending_limit = pending_limit
        self._up = True
        self._went_down = trio.Event()
        self._pending: set[str] = set()
        self._forget_all = False  # the pending tags overflowed: every entry is suspect
        self._down_since = 0.0
        self._hits = 0
        self._misses = 0
        self._errors = 0
        self._outages = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bring the tier back after each outage, until cancelled."""
        task_status.started()
        try:
            while True:
                await self._went_down.wait()
                await self._recover()
                self._went_down = trio.Event()
                self._up = True
                log.info(
                    "cache_redis_up", down_for=round(trio.current_time() - self._down_since, 3)
                )
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await self._store.close()

    async def get(self, key: str, tags: Sequence[str]) -> Lookup | None:
        """What Redis holds for `key` (see `CacheTierStore.get`), or None while down."""
        if not self._up:
            return None
        try:
            lookup = await self._store.get(key, tags)
        except RedisUnavailable as exc:
            self._failed(exc)
            return None
        if lookup.value is None:
            self._misses += 1
        else:
            self._hits += 1
        return lookup

    async def put(self, key: str, value: bytes, stamp: bytes, ttl: float) -> None:
        """Store `value` stamped as `get` returned; skipped while down."""
        if not self._up:
            return
        try:
            await self._store.put(key, value, stamp, ttl)
        except RedisUnavailable as exc:
            self._failed(exc)

    async def invalidate(self, tags: Sequence[str]) -> None:
        """Give `tags` new versions now, or, while down, once the tier is back."""
        if self._up:
            try:
                await self._store.invalidate(tags)
            except RedisUnavailable as exc:
                self._failed(exc)
            else:
                return
        self._keep(tags)

    def statistics(self) -> RedisTierStatistics:
        return RedisTierStatistics(
            up=self._up,
            hits=self._hits,
            misses=self._misses,
            errors=self._errors,
            outages=self._outages,
            pending=len(self._pending),
        )

    def _failed(self, error: RedisUnavailable) -> None:
        self._errors += 1
        if not self._up:
            return
        self._up = False
        self._outages += 1
        self._down_since = trio.current_time()
        self._went_down.set()
        log.warning("cache_redis_down", error=str(error), retry_in=self._backoff_initial)

    def _keep(self, tags: Sequence[str]) -> None:
        if self._forget_all:
            return
        self._pending.update(tags)
        if len(self._pending) > self._pending_limit:
            self._pending.clear()
            self._forget_all = True

    async def _recover(self) -> None:
        """Return once Redis answers and has every invalidation made while it was away."""
        delay = self._backoff_initial
        while True:
            await trio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)
            try:
                await self._catch_up()
            except RedisUnavailable:
                self._errors += 1
            else:
                return

    async def _catch_up(self) -> None:
        await self._store.ping()
        if self._forget_all:
            # Cleared first: tags invalidated during the clear go to the pending set.
            self._forget_all = False
            try:
                await self._store.clear()
            except BaseException:
                self._forget_all = True
                raise
        # Tags invalidated while this await runs join the set and go in the next turn; the
        # tier is marked up only when none is left.
        while self._pending:
            tags = sorted(self._pending)
            self._pending.clear()
            try:
                await self._store.invalidate(tags)
            except BaseException:
                self._pending.update(tags)
                raise
