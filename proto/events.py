"""Events one part of the node publishes for the live layer (rooms, sessions, other nodes).

Producers (the progress writer, the transcoder pool) are handed an `EventSink` at construction
and know nothing of who listens; the live layer routes each event to the course room, the user's
session and, through the Bus, to other nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec


class ProgressChanged(msgspec.Struct, frozen=True, gc=False, tag="progress_changed"):
    """A learner's stored progress on one content changed (after it was committed)."""

    user_id: int
    course_id: int
    content_id: int
    position: float
    watched_seconds: float
    duration: float | None
    coverage: float  # watched fraction of the duration, 0..1
    completed: bool
    played: list[tuple[float, float]]
    device_id: str | None = None  # the device that sent it, so it is not echoed back


class JobChanged(msgspec.Struct, frozen=True, gc=False, tag="job_changed"):
    """A transcode job moved: queued, probing, transcoding (with progress), ready, failed."""

    job_id: int
    course_id: int
    content_id: int
    uploader_id: int
    status: str  # "queued" | "probing" | "transcoding" | "ready" | "failed" | "cancelled"
    progress: float  # 0..1
    eta_seconds: float | None = None
    error: str | None = None
    renditions: list[str] = []  # labels playable so far


Event = ProgressChanged | JobChanged
EventSink = Callable[[Event], Awaitable[None]]
