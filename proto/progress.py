"""Progress bodies: the heartbeat a player sends, the write it becomes, and the states returned.

`ProgressUpdate` is what a client sends, over `POST /api/v1/progress` or the progress WebSocket;
`ProgressWrite` is that update once the server has checked its shape and stamped it, on its way
to the progress writer (it carries no reply, so it could cross to another node as it is);
`ProgressState`, `CourseProgress` and `ProgressSummary` are what clients read back.

Times are seconds into the content, as floats. Played segments follow the xAPI video profile's
`played-segments`: `[start, end]` pairs of what actually played; the server keeps their union.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from proto.api import MAX_ID, ContentKind, Request, Response

# Longer than any lecture; it keeps absurd numbers (and 1e400, which parses as infinity) out.
MAX_SECONDS = 7 * 24 * 3600.0
# One heartbeat reports what played since the last one: a few segments. A client sending more is
# broken or hostile, and each one costs the merge; the cap keeps an update cheap.
MAX_SEGMENTS_PER_UPDATE = 64
MAX_DEVICE_ID_LENGTH = 128

ContentId = Annotated[int, Meta(ge=1, le=MAX_ID)]
Seconds = Annotated[
    float, Meta(ge=0.0, le=MAX_SECONDS, description="Seconds from the start of the content.")
]
Segment = tuple[Seconds, Seconds]
Rate = Annotated[float, Meta(gt=0.0, le=16.0)]
AwareTime = Annotated[datetime, Meta(tz=True)]


class ProgressUpdate(Request, frozen=True):
    """A heartbeat from a player (video), or "I have read it" (text: `completed: true`).

    - `position`: where playback is now, so another device resumes there.
    - `played`: `[start, end]` segments played since the last heartbeat (at most
      `MAX_SEGMENTS_PER_UPDATE`). A video completes once the union of everything played covers
      the course's completion threshold of its duration, so seeking to the end does not count.
    - `completed`: only for text contents, which complete when the learner says so.
    - `playback_rate`: the player's speed (0-16), accepted for the record; not trusted: played
      time is credited no faster than the course's `max_playback_rate` allows (the answer's
      `clamped_seconds` counts what was claimed beyond it).
    - `client_ts`: when the device took the reading (with a timezone). A device replaying
      heartbeats it kept while offline sends it, so its old position does not override a newer
      one from another device. Times in the future count as now.
    """

    content_id: ContentId
    position: Seconds | None = None
    played: Annotated[list[Segment], Meta(max_length=MAX_SEGMENTS_PER_UPDATE)] = []
    completed: bool = False
    playback_rate: Rate | None = None
    client_ts: AwareTime | None = None


class ProgressWrite(msgspec.Struct, frozen=True, gc=False, tag="progress_write"):
    """An update whose shape has been checked, stamped and normalised: what the writer stores.

    `played` is already a normalised union (sorted, disjoint); `position_at` orders positions
    from several devices (the device's reading time, never later than `received_at`).
    """

    user_id: int
    content_id: int
    position: float | None
    position_at: datetime
    played: tuple[tuple[float, float], ...]
    completed: bool
    received_at: datetime
    device_id: str | None = None


class ProgressState(Response, frozen=True):
    """A learner's stored progress on one content, as committed."""

    content_id: int
    course_id: int
    position: float
    played: list[tuple[float, float]]
    watched_seconds: float
    duration: float | None
    coverage: float  # watched fraction of the duration (text: 1 once completed), 0..1
    completed: bool
    completed_at: datetime | None
    updated_at: datetime
    # Seconds of new coverage this content's heartbeats claimed faster than the course's maximum
    # playback rate allows, never credited (summed; lms/domain/progress.py `credit`). Last, with
    # a default, so a state the previous release sent still decodes.
    clamped_seconds: float = 0.0


class ContentProgress(Response, frozen=True):
    """One content of a course and where the caller stands on it (zeros if never opened)."""

    content_id: int
    title: str
    kind: ContentKind
    duration: float | None
    position: float
    played: list[tuple[float, float]]
    watched_seconds: float
    coverage: float
    completed: bool
    completed_at: datetime | None
    updated_at: datetime | None  # None: never opened


class CourseStanding(Response, frozen=True):
    """Where the caller stands in one course.

    `percent` is the share of the course's contents completed (0-100); `next_content_id` is the
    first content in course order not completed yet (None when all are, or the course is empty).
    """

    course_id: int
    title: str
    completed_contents: int
    total_contents: int
    percent: float
    watched_seconds: float
    next_content_id: int | None
    last_activity_at: datetime | None


class CourseProgress(CourseStanding, frozen=True):
    """`GET /api/v1/progress/course/{course_id}`: the standing, and every content in order."""

    contents: list[ContentProgress]


class ProgressSummary(Response, frozen=True):
    """`GET /api/v1/progress/my/summary`: every course the caller is enrolled in."""

    courses: list[CourseStanding]
    completed_courses: int
    watched_seconds: float
