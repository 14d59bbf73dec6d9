"""Dashboard bodies: `GET /api/v1/dashboard/...` for learners, instructors and admins.

Times of day are UTC instants; dates (`start`, `first`, `last`) are the learner's local dates in
`time_zone`. Durations and watch time are seconds. Shares are 0..1.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from proto.api import ContentKind, Response
from proto.jobs import JobView


class ActivityKind(enum.StrEnum):
    STARTED = "started"  # first watched or read something of a content (to the hour)
    COMPLETED = "completed"  # a content
    COURSE_FINISHED = "course_finished"  # every content of a course completed


class RecentActivity(Response, frozen=True):
    kind: ActivityKind
    at: datetime
    course_id: int
    course_title: str
    content_id: int | None  # None for a finished course
    content_title: str | None


class ResumePoint(Response, frozen=True):
    """Where to pick a course up: the content last opened and not completed (else the first
    not completed), and the second to resume it at. No content: every one is completed, or
    the course has none."""

    course_id: int
    course_title: str
    percent: float  # of the course's contents completed, 0-100
    content_id: int | None
    content_title: str | None
    kind: ContentKind | None
    position: float


class LearnerStats(Response, frozen=True):
    """`GET /api/v1/dashboard/stats`."""

    time_zone: str
    courses_in_progress: int  # enrolled, something done, not everything
    courses_completed: int
    courses_not_started: int
    watched_seconds: float
    current_streak: int  # consecutive local days with activity, ending today or yesterday
    longest_streak: int
    recent_activity: list[RecentActivity]  # newest first
    resume: list[ResumePoint]  # one per unfinished course, most recently active first
    computed_at: datetime


class WatchTimeBucket(Response, frozen=True):
    start: date  # the day, or the Monday of the ISO week
    watched_seconds: float
    completions: int


class ProgressOverTime(Response, frozen=True):
    """`GET /api/v1/dashboard/analytics/progress`."""

    time_zone: str
    first: date
    last: date
    bucket: str  # "day" | "week"
    buckets: list[WatchTimeBucket]
    watched_seconds: float  # over the whole range
    completions: int


class ActiveCounts(Response, frozen=True):
    """Distinct users with activity over the trailing day, week and month (30 days)."""

    day: int
    week: int
    month: int


class FunnelStep(Response, frozen=True):
    content_id: int
    title: str
    kind: ContentKind
    started: int
    completed: int
    started_share: float  # of the enrolled learners
    completed_share: float
    coverage: float | None  # of the video, by the average learner who started it


class DropOff(Response, frozen=True):
    """The retention falls by `drop` from second `start` to `end`, most sharply at `at`."""

    start: int
    end: int
    at: int
    drop: float


class VideoRetention(Response, frozen=True):
    content_id: int
    title: str
    duration: float
    viewers: int  # learners who played some of it
    retention: list[float]  # per second: the share of viewers who watched it
    drop_offs: list[DropOff]  # steepest first


class ClampedLearner(Response, frozen=True):
    """A learner whose heartbeats claimed playback faster than the course's maximum rate: the
    seconds claimed beyond it over all the course's videos, never credited."""

    user_id: int
    name: str
    clamped_seconds: float


class CourseAnalytics(Response, frozen=True):
    """`GET /api/v1/dashboard/analytics/course/{course_id}`."""

    course_id: int
    title: str
    owner_id: int
    enrolled: int
    active_learners: ActiveCounts
    funnel: list[FunnelStep]  # in course order
    coverage: float | None  # of the course's video time, by the average enrolled learner
    videos: list[VideoRetention]  # in course order, those with a known duration
    computed_at: datetime
    # Enrolled learners with claims clamped, most seconds first (at most 20). Last, with a
    # default, so an answer cached by the previous release still decodes.
    clamped: list[ClampedLearner] = []


class TopCourse(Response, frozen=True):
    course_id: int
    title: str
    enrolled: int
    completions: int
    watched_seconds: float


class AdminDashboard(Response, frozen=True):
    """`GET /api/v1/dashboard/admin`."""

    users: int
    users_by_role: dict[str, int]
    active_users: ActiveCounts
    enrolments: int
    completions: int
    watched_seconds: float
    transcode_queue: dict[str, int]  # jobs by state, every state listed
    recent_failures: list[JobView]  # newest first
    top_courses: list[TopCourse]  # most enrolled first
    computed_at: datetime
