"""Constant frame rate out of any source: the output rate, and which source frame fills each tick.

Phones and screen recorders write variable frame rates; HLS segments of equal length and GOPs
aligned across renditions need a constant one. Like the ffmpeg `fps` filter, each output tick
`n` (at `n / rate` seconds) shows the source frame on screen at that moment: a frame is repeated
when the source paused, dropped when two arrive within one tick.
"""

from __future__ import annotations

import math
from fractions import Fraction

# Rates players and encoders know by name; a measured average this close to one snaps to it.
_COMMON_RATES = tuple(
    Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "50", "60000/1001", "60")
)
_SNAP = 0.05
MAX_RATE = Fraction(60)


def output_rate(source_rate: Fraction) -> Fraction:
    """The constant rate to encode a source of (average) `source_rate` at: at most 60."""
    nearest = min(_COMMON_RATES, key=lambda r: abs(r - source_rate))
    if abs(nearest - source_rate) <= nearest * _SNAP:
        return nearest
    return min(MAX_RATE, max(Fraction(1), Fraction(round(source_rate))))


class Cadence:
    """Turns source frame times into runs of output ticks.

    Feed each source frame's time (seconds from the start) to `next_frame`; it answers which
    ticks the *previous* frame fills (often one, none when it is dropped), known only once the
    next frame's time is. `finish` answers the same for the last frame. The first frame also
    fills any ticks before it, so the output always starts at tick 0.
    """

    def __init__(self, rate: Fraction) -> None:
        self.rate = rate
        self.ticks = 0  # ticks handed out so far
        self._started = False

    def next_frame(self, seconds: float) -> range:
        """Ticks the previous frame fills, now that a frame at `seconds` follows it."""
        if not self._started:
            self._started = True
            return range(0)
        return self._fill_until(math.floor(seconds * self.rate + 0.5))

    def finish(self, end_seconds: float) -> range:
        """Ticks the last frame fills until `end_seconds` (at least one)."""
        if not self._started:
            return range(0)
        return self._fill_until(max(self.ticks + 1, math.floor(end_seconds * self.rate + 0.5)))

    def _fill_until(self, tick: int) -> range:
        """Half a tick rounds up, as the `fps` filter does."""
        ticks = range(self.ticks, max(self.ticks, tick))
        self.ticks = ticks.stop
        return ticks
