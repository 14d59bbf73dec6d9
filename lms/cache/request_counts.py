"""How often each key is asked for, in bounded memory: what to warm after a restart.

Counts are kept for at most `2 * capacity` keys; past that, the `capacity` most asked-for
stay and the rest are forgotten, so a key asked for often keeps its place while a long tail of
keys asked for once each costs at most one pruning per `capacity` new keys.
"""

from __future__ import annotations

from collections import Counter


class RequestCounts:
    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._counts: Counter[str] = Counter()

    def count(self, key: str) -> None:
        self._counts[key] += 1
        if len(self._counts) > 2 * self._capacity:
            self._counts = Counter(dict(self._counts.most_common(self._capacity)))

    def most_requested(self, n: int, prefix: str = "") -> list[tuple[str, int]]:
        """The `n` keys starting with `prefix` asked for most, with their counts, most first."""
        found = [(key, hits) for key, hits in self._counts.items() if key.startswith(prefix)]
        found.sort(key=lambda item: item[1], reverse=True)
        return found[:n]
