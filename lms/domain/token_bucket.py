"""A token bucket: at most `capacity` requests at once, then `rate` more per second.

Theory of operation. A bucket holds up to `capacity` tokens, refills at `rate` tokens per second
and each request takes one. Rather than a token count and the time it was last updated, the
bucket keeps one number: `full_at`, the moment it will be full again if nothing more is taken
(the "theoretical arrival time" of GCRA, the same algorithm). At time `now` it holds
`capacity - rate * (full_at - now)` tokens, so a request may take one when
`full_at - now <= (capacity - 1) / rate`, and taking pushes `full_at` on by `1 / rate`. A bucket
whose `full_at` has passed is indistinguishable from a new one, so a store may forget it (a
Redis key expires at `full_at`). Any run of takes admits at most `capacity + rate * elapsed`,
the bound `tests/lms/domain/test_token_bucket.py` proves.

Times are kept in whole nanoseconds, so the comparisons are exact: in floats, a burst at
t = 2.0 with a third of a second per token once came out 1.7e-16 s short of its second token.
One token's interval is rounded up, so rounding can only make the bucket stricter.

Pure: the caller passes the time (a monotonic clock in seconds); nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_NS = 1_000_000_000


@dataclass(frozen=True)
class Limit:
    """`capacity` requests at once (the burst), refilled at `rate` per second."""

    capacity: int
    rate: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or not self.rate > 0:
            raise ValueError("a limit needs a capacity of at least 1 and a positive rate")

    @property
    def interval(self) -> float:
        """Seconds to refill one token."""
        return self.interval_ns / _NS

    @property
    def interval_ns(self) -> int:
        return math.ceil(_NS / self.rate)


class TokenBucket:
    """One key's bucket, full when made."""

    __slots__ = ("_burst_ns", "_full_at", "_interval_ns")

    def __init__(self, limit: Limit, now: float) -> None:
        self._interval_ns = limit.interval_ns
        self._burst_ns = (limit.capacity - 1) * self._interval_ns
        self._full_at = _ns(now)

    def take(self, now: float) -> float:
        """Take a token at `now` if there is one: 0.0 when taken, else the seconds until one
        will be (the request is refused and takes nothing)."""
        at = _ns(now)
        start = max(self._full_at, at)  # a full bucket refills no further
        wait = start - at - self._burst_ns
        if wait > 0:
            return wait / _NS
        self._full_at = start + self._interval_ns
        return 0.0

    def is_full(self, now: float) -> bool:
        return self._full_at <= _ns(now)


def _ns(seconds: float) -> int:
    return round(seconds * _NS)
