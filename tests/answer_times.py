"""Whether two ways through an endpoint take as long as each other, as a client would see it."""

from __future__ import annotations

import statistics

# A path that skips a password hash answers in a few ms against tens or hundreds: its median is
# far more than this fraction below the other's. Two paths doing the same work differ by a few
# per cent, even on a busy machine, where quartiles of a small sample drift past each other.
TOLERANCE = 0.25


def assert_alike(first: list[float], second: list[float]) -> None:
    """Neither path's median answer time is more than TOLERANCE below the other's."""
    fast, slow = sorted((statistics.median(first), statistics.median(second)))
    assert fast >= slow * (1 - TOLERANCE), f"medians {fast * 1000:.1f} ms and {slow * 1000:.1f} ms"
