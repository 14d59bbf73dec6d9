"""Jittered time-to-live: entries made together (a warm-up, a burst after an invalidation)
expire spread over a window instead of all at once, so their recomputation is spread too."""

from __future__ import annotations

from collections.abc import Callable


def jittered(ttl: float, spread: float, draw: Callable[[], float]) -> float:
    """`ttl` shortened by up to `spread` of itself: a value in ``[ttl * (1 - spread), ttl]``.

    `draw` returns a number in ``[0, 1)`` (`random.random`). Never longer than asked, so a
    caller's ttl stays the bound on how old a value can be.
    """
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, not {ttl}")
    if not 0 <= spread < 1:
        raise ValueError(f"spread must be in [0, 1), not {spread}")
    return ttl * (1 - spread * draw())
