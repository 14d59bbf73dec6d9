"""A node's memory tier: encoded values, least recently used out first, bounded by bytes.

Theory of operation
-------------------
Sans-io: no trio, no clock. Every call that needs the time takes `now` (any monotonic clock,
in seconds), so the rules are tested with plain numbers.

Values are bytes (msgspec JSON), so an entry's size is exact: the bound counts the bytes of
values and keys, not the dictionaries around them. Entries sit in an `OrderedDict` in use
order; a hit moves its entry to the end, and `put` evicts from the front until the new entry
fits. An entry larger than the whole bound is not stored.

Each entry carries tags (`user:42`, `course:7`); a tag index maps each tag to its keys, so
`invalidate(tags)` costs the entries it drops, not the size of the tier. An entry past its
expiry counts as a miss and goes when next asked for; until then it only holds bytes, which
the LRU order reclaims first if nobody asks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemoryStatistics:
    """A snapshot of the memory tier.

    Attributes:
      hits, misses: lookups answered, and not (absent or expired), over its life.
      evictions: entries dropped to make room (least recently used first).
      invalidated: entries dropped because one of their tags was invalidated or the tier
          was cleared.
      entries, bytes: what it holds now; `bytes` never exceeds `max_bytes`.
    """

    hits: int
    misses: int
    evictions: int
    invalidated: int
    entries: int
    bytes: int
    max_bytes: int


@dataclass(slots=True)
class _Entry:
    value: bytes
    tags: frozenset[str]
    expires_at: float
    size: int


class MemoryTier:
    """Encoded values by key, with tags and expiries, in at most `max_bytes` bytes."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._by_tag: dict[str, set[str]] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._invalidated = 0

    def get(self, key: str, now: float) -> bytes | None:
        """The value stored under `key`, unless absent or expired by `now`."""
        entry = self._entries.get(key)
        if entry is None:
            self._misses += 1
            return None
        if entry.expires_at <= now:
            self._drop(key)
            self._misses += 1
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return entry.value

    def put(self, key: str, value: bytes, tags: Iterable[str], expires_at: float) -> bool:
        """Store `value` under `key` (replacing what was there) until `expires_at`, evicting
        the least recently used entries to make room. Returns False, storing nothing, for a
        value that cannot fit in `max_bytes` at all."""
        if key in self._entries:
            self._drop(key)
        size = len(value) + len(key)
        if size > self.max_bytes:
            return False
        while self._bytes + size > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self._evictions += 1
        entry = _Entry(value, frozenset(tags), expires_at, size)
        self._entries[key] = entry
        self._bytes += size
        for tag in entry.tags:
            self._by_tag.setdefault(tag, set()).add(key)
        return True

    def invalidate(self, tags: Iterable[str]) -> int:
        """Drop every entry carrying any of `tags`; return how many went."""
        dropped = 0
        for tag in tags:
            for key in tuple(self._by_tag.get(tag, ())):
                self._drop(key)
                dropped += 1
        self._invalidated += dropped
        return dropped

    def clear(self) -> int:
        """Drop everything; return how many entries went."""
        dropped = len(self._entries)
        self._entries.clear()
        self._by_tag.clear()
        self._bytes = 0
        self._invalidated += dropped
        return dropped

    def statistics(self) -> MemoryStatistics:
        return MemoryStatistics(
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            invalidated=self._invalidated,
            entries=len(self._entries),
            bytes=self._bytes,
            max_bytes=self.max_bytes,
        )

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size
        for tag in entry.tags:
            keys = self._by_tag[tag]
            keys.discard(key)
            if not keys:
                del self._by_tag[tag]
