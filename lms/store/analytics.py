"""What the dashboards read (asyncpg; run through `Database`): each answer's facts in one unit of
work, so a dashboard crosses the bridge once.

The rules that turn facts into answers (streaks, funnels, retention, windows) are pure and live
in `lms.domain`; here are only the reads. Retention is the heavy one: a course with thousands of
learners has hundreds of thousands of played bounds per video. PostgreSQL hands them over as one
`bytea` per video, the big-endian float8s of every viewer's `[start, end, ...]` concatenated
(`float8send` per bound, `string_agg` per video), which numpy reads in place: no Python float is
made per bound (a list of lists per viewer cost ~57 ms per 5,000 viewers x 50 videos). Each
row's bounds are joined in its own subquery, in their order, and the rows then in any order
(`Plays` needs pairs, not an order of viewers): one ordered aggregate over all ~450k bounds of a
course sorted them globally and spilled ~10 MB to disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np

from lms.domain.funnel import ContentTally
from lms.domain.retention import Plays
from lms.store import activity
from lms.store.jobs import list_jobs
from lms.store.progress import contents_progress, enrolled_courses
from lms.store.rows import fetch_one
from proto.api import ContentKind
from proto.dashboard import ClampedLearner
from proto.jobs import JobState, JobView
from proto.progress import ContentProgress

# Bounds as PostgreSQL's binary float8 sends them.
_BOUND = np.dtype(">f8")


@dataclass(frozen=True, slots=True)
class LearnerContext:
    """What decides a learner's dashboard keys: their zone and the courses they are in."""

    time_zone: str
    course_ids: list[int]


@dataclass(frozen=True, slots=True)
class EnrolledCourse:
    course_id: int
    title: str
    contents: list[ContentProgress]  # in course order, with the learner's progress


@dataclass(frozen=True, slots=True)
class Started:
    """A content the learner first credited activity to in `hour`."""

    course_id: int
    content_id: int
    hour: datetime


@dataclass(frozen=True, slots=True)
class LearnerFacts:
    courses: list[EnrolledCourse]  # oldest enrolment first
    active_hours: list[datetime]  # every UTC hour with activity, oldest first
    started: list[Started]  # the most recent first starts, newest first


@dataclass(frozen=True, slots=True)
class CourseContent:
    title: str
    kind: ContentKind
    tally: ContentTally


@dataclass(frozen=True, slots=True)
class CourseFacts:
    course_id: int
    title: str
    owner_id: int
    enrolled: int
    active: list[int]  # learners active since each of the times asked for
    contents: list[CourseContent]  # in course order
    plays: dict[int, Plays]  # per video with a duration that someone played
    clamped: list[ClampedLearner]  # most clamped seconds first


@dataclass(frozen=True, slots=True)
class TopCourse:
    course_id: int
    title: str
    enrolled: int
    completions: int
    watched_seconds: float


@dataclass(frozen=True, slots=True)
class PlatformFacts:
    users_by_role: dict[str, int]
    active: list[int]  # users active since each of the times asked for
    enrolments: int
    completions: int
    watched_seconds: float
    jobs_by_state: dict[str, int]  # every state, zero included
    recent_failures: list[JobView]  # newest job first
    top_courses: list[TopCourse]  # most enrolled first


async def learner_context(conn: asyncpg.Connection, user_id: int) -> LearnerContext | None:
    """The user's time zone and enrolled course ids (ascending); None for no such user."""
    row = await conn.fetchrow(
        """
        SELECT time_zone,
               ARRAY(SELECT course_id FROM enrollments WHERE user_id = $1 ORDER BY course_id)
                   AS course_ids
        FROM users WHERE id = $1
        """,
        user_id,
    )
    return None if row is None else LearnerContext(row["time_zone"], list(row["course_ids"]))


async def learner_facts(conn: asyncpg.Connection, user_id: int, recent: int) -> LearnerFacts:
    """Everything the learner's dashboard is made of (run it in a transaction: one snapshot).
    `recent` bounds the first starts returned."""
    enrolled = await enrolled_courses(conn, user_id)
    contents = await contents_progress(conn, user_id, [course_id for course_id, _ in enrolled])
    hours = await conn.fetch(
        "SELECT DISTINCT hour FROM activity_hourly WHERE user_id = $1 ORDER BY hour", user_id
    )
    started = await conn.fetch(
        """
        SELECT course_id, content_id, min(hour) AS hour
        FROM activity_hourly WHERE user_id = $1
        GROUP BY course_id, content_id
        ORDER BY hour DESC, content_id DESC LIMIT $2
        """,
        user_id,
        recent,
    )
    return LearnerFacts(
        courses=[EnrolledCourse(c, title, contents[c]) for c, title in enrolled],
        active_hours=[row["hour"] for row in hours],
        started=[Started(row["course_id"], row["content_id"], row["hour"]) for row in started],
    )


async def course_facts(
    conn: asyncpg.Connection, course_id: int, since: Sequence[datetime], *, clamped: int = 20
) -> CourseFacts | None:
    """A course's analytics facts (run it in a transaction); None for no such course.
    `clamped` bounds the learners returned whose claims were clamped.

    Progress counts only for learners enrolled now, as `lms.domain.funnel` expects."""
    course = await conn.fetchrow("SELECT id, title, owner_id FROM courses WHERE id = $1", course_id)
    if course is None:
        return None
    enrolled = await conn.fetchval(
        "SELECT count(*) FROM enrollments WHERE course_id = $1", course_id
    )
    active = await activity.active_users(conn, since, course_id=course_id)
    tallies = await conn.fetch(
        """
        SELECT c.id, c.title, c.kind, c.duration_seconds,
               count(p.user_id) AS started, count(p.completed_at) AS completed,
               coalesce(sum(least(p.watched_seconds,
                                  coalesce(c.duration_seconds, p.watched_seconds))), 0)
                   AS watched
        FROM contents c
        LEFT JOIN (progress p JOIN enrollments e
                   ON e.course_id = p.course_id AND e.user_id = p.user_id)
            ON p.content_id = c.id
        WHERE c.course_id = $1
        GROUP BY c.id
        ORDER BY c.position, c.id
        """,
        course_id,
    )
    plays = await conn.fetch(
        """
        SELECT r.content_id, count(*) AS viewers, string_agg(r.bounds, ''::bytea) AS bounds
        FROM (
            SELECT p.content_id,
                   (SELECT string_agg(float8send(b.bound), ''::bytea ORDER BY b.i)
                    FROM unnest(p.played) WITH ORDINALITY AS b (bound, i)) AS bounds
            FROM progress p
            JOIN enrollments e ON e.course_id = p.course_id AND e.user_id = p.user_id
            JOIN contents c ON c.id = p.content_id
            WHERE p.course_id = $1 AND c.kind = 'video' AND c.duration_seconds IS NOT NULL
              AND cardinality(p.played) > 0
        ) r
        GROUP BY r.content_id
        """,
        course_id,
    )
    # Claims beyond the course's maximum playback rate (lms/domain/progress.py `credit`).
    suspects = await conn.fetch(
        """
        SELECT p.user_id, u.name, sum(p.clamped_seconds) AS clamped
        FROM progress p
        JOIN enrollments e ON e.course_id = p.course_id AND e.user_id = p.user_id
        JOIN users u ON u.id = p.user_id
        WHERE p.course_id = $1 AND p.clamped_seconds > 0
        GROUP BY p.user_id, u.name
        ORDER BY clamped DESC, p.user_id LIMIT $2
        """,
        course_id,
        clamped,
    )
    return CourseFacts(
        course_id=course["id"],
        title=course["title"],
        owner_id=course["owner_id"],
        enrolled=enrolled,
        active=active,
        contents=[
            CourseContent(
                title=row["title"],
                kind=ContentKind(row["kind"]),
                tally=ContentTally(
                    content_id=row["id"],
                    started=row["started"],
                    completed=row["completed"],
                    watched_seconds=row["watched"],
                    duration=row["duration_seconds"] if row["kind"] == "video" else None,
                ),
            )
            for row in tallies
        ],
        plays={row["content_id"]: _plays(row["bounds"], row["viewers"]) for row in plays},
        clamped=[
            ClampedLearner(user_id=row["user_id"], name=row["name"], clamped_seconds=row["clamped"])
            for row in suspects
        ],
    )


def _plays(bounds: bytes, viewers: int) -> Plays:
    flat = np.frombuffer(bounds, dtype=_BOUND).astype(np.float64)  # native order for numpy
    return Plays(starts=flat[0::2], ends=flat[1::2], viewers=viewers)


async def platform_facts(
    conn: asyncpg.Connection, since: Sequence[datetime], *, failures: int, top: int
) -> PlatformFacts:
    """The admin dashboard's facts (run it in a transaction); `failures` and `top` bound the
    failed jobs and the courses returned."""
    roles = await conn.fetch("SELECT role, count(*) AS n FROM users GROUP BY role")
    totals = await fetch_one(
        conn,
        """
        SELECT (SELECT count(*) FROM enrollments) AS enrolments,
               (SELECT count(*) FROM progress WHERE completed_at IS NOT NULL) AS completions,
               (SELECT coalesce(sum(watched_seconds), 0) FROM activity_hourly) AS watched
        """,
    )
    active = await activity.active_users(conn, since)
    states = await conn.fetch("SELECT state, count(*) AS n FROM jobs GROUP BY state")
    failed = await list_jobs(conn, owner_id=None, state=JobState.FAILED, limit=failures, offset=0)
    courses = await conn.fetch(
        """
        SELECT co.id, co.title,
               (SELECT count(*) FROM enrollments e WHERE e.course_id = co.id) AS enrolled,
               (SELECT count(*) FROM progress p
                WHERE p.course_id = co.id AND p.completed_at IS NOT NULL) AS completions,
               (SELECT coalesce(sum(a.watched_seconds), 0) FROM activity_hourly a
                WHERE a.course_id = co.id) AS watched
        FROM courses co
        ORDER BY enrolled DESC, watched DESC, co.id LIMIT $1
        """,
        top,
    )
    by_state = {state.value: 0 for state in JobState}
    by_state.update({row["state"]: row["n"] for row in states})
    return PlatformFacts(
        users_by_role={row["role"]: row["n"] for row in roles},
        active=active,
        enrolments=totals["enrolments"],
        completions=totals["completions"],
        watched_seconds=totals["watched"],
        jobs_by_state=by_state,
        recent_failures=failed,
        top_courses=[
            TopCourse(row["id"], row["title"], row["enrolled"], row["completions"], row["watched"])
            for row in courses
        ],
    )
