"""A player whose heartbeats claim no more than the wall clock allows: its video plays at normal
speed from the moment it starts, so the server credits every segment it acknowledges (a claim
beyond what the clock allows is clamped, lms/domain/progress.py) and a test may expect each
acknowledged segment in the stored row."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import trio

# Heartbeats sent back to back still claim a segment this long: a zero-length one stores nothing.
MIN_SEGMENT = 0.005

Segment = tuple[float, float]


@dataclass
class Playhead:
    started: float = field(default_factory=time.monotonic)
    acknowledged: list[Segment] = field(default_factory=list)

    async def next_heartbeat(self, video: int) -> dict:
        """The body of the next heartbeat: what played since the last acknowledged one (a
        refused one is claimed again, up to now)."""
        since = self.acknowledged[-1][1] if self.acknowledged else 0.0
        ahead = MIN_SEGMENT - (time.monotonic() - self.started - since)
        if ahead > 0:
            await trio.sleep(ahead)
        segment = (since, round(time.monotonic() - self.started, 3))
        return {"content_id": video, "position": segment[1], "played": [segment]}

    def acknowledge(self, heartbeat: dict) -> None:
        [segment] = heartbeat["played"]
        self.acknowledged.append(segment)


def covered(segment: Segment, stored: list[Segment]) -> bool:
    """Whether `segment` lies within one of the `stored` (merged) segments."""
    return any(start <= segment[0] and segment[1] <= end for start, end in stored)
