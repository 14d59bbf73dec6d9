"""A fixed-bucket histogram that an actor or an edge updates in place and a scrape reads.

Counting is one bisect and two adds, with no lock (a trio program updates it from one thread), so
the owner keeps its figures without knowing about Prometheus; `lms/observability/metrics.py`
turns `snapshot()`s into metric families at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

# Seconds, for request and commit latencies: 1 ms to 10 s.
LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class HistogramSnapshot:
    """`buckets` holds (upper bound, observations <= bound) pairs, cumulative as Prometheus
    wants them, ending with (inf, count)."""

    buckets: tuple[tuple[float, int], ...]
    sum: float
    count: int


class Histogram:
    def __init__(self, bounds: Sequence[float] = LATENCY_BOUNDS) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("bounds must be strictly increasing")
        self._bounds = tuple(bounds)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one is (bounds[-1], inf]
        self._sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le is <=).
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def snapshot(self) -> HistogramSnapshot:
        cumulative: list[tuple[float, int]] = []
        total = 0
        for bound, count in zip((*self._bounds, float("inf")), self._counts, strict=True):
            total += count
            cumulative.append((bound, total))
        return HistogramSnapshot(tuple(cumulative), self._sum, total)
