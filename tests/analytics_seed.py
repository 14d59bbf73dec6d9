"""A course of realistic size for analytics, written straight into PostgreSQL: thousands of
enrolled learners, tens of videos, each learner's progress with its played segments, and their
hourly activity over the last days. For tests/bench/dashboard.py and any test that needs a big
course: 5,000 learners x 50 videos go in through COPY in a few seconds.

How the learners behave (drawn from a seeded generator, so a seed always writes the same rows):
- One in twelve never starts. The others go through the videos in order and stop at some
  video, fewer reaching each next one (about four in ten reach the last); one in twenty of the
  videos on their way is skipped.
- Four in five watch a video from its start: over half to the end, the others leave early,
  half of those at one of the video's two dull moments (the drop-offs a chart should name)
  and the rest anywhere, earlier more likely. One in five skips around: two to five segments.
- A learner is active from a start, up to `days` ago, to a day between then and now, watching
  their videos in order at an even pace; each video's watching is credited to one to three
  consecutive hours (one per 20 minutes watched), its completion to the last.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

HOUR = timedelta(hours=1)
NEVER_STARTS = 1 / 12
REACH_SCALE = 60.0  # videos: P(reaching video k) = exp(-k / REACH_SCALE) for those who start
SKIPS_VIDEO = 0.05
SKIPS_AROUND = 0.2
WATCHES_TO_END = 0.55
LEAVES_AT_DULL_MOMENT = 0.5
SECONDS_PER_CREDITED_HOUR = 1200.0
COMPLETION_THRESHOLD = 0.9  # the course's (the schema's default)


@dataclass(frozen=True)
class AnalyticsCourse:
    course_id: int
    owner_id: int  # an instructor
    learners: list[int]  # every one enrolled
    videos: list[int]  # in course order
    durations: list[float]  # seconds, per video
    progress_rows: int
    bounds: int  # played segment bounds in all progress rows
    activity_rows: int


async def seed_analytics_course(
    conn: asyncpg.Connection,
    *,
    learners: int = 5000,
    videos: int = 50,
    days: int = 30,
    now: datetime | None = None,
    seed: int = 21,
) -> AnalyticsCourse:
    """Write the course, its owner, learners, enrolments, progress and activity (see the
    module's docstring), then ANALYZE the tables, as autovacuum would have by then."""
    now = now or datetime.now(UTC)
    rng = np.random.default_rng(seed)
    label = uuid.uuid4().hex[:8]  # e-mail addresses are unique: seed twice in one database
    owner = await conn.fetchval(
        "INSERT INTO users (email, name, password_hash, role)"
        " VALUES ($1, 'Course owner', 'x', 'instructor') RETURNING id",
        f"owner-{label}@bench.lms",
    )
    learner_ids = sorted(
        row["id"]
        for row in await conn.fetch(
            "INSERT INTO users (email, name, password_hash)"
            " SELECT 'learner-' || $1 || '-' || i || '@bench.lms', 'Learner ' || i, 'x'"
            " FROM generate_series(1, $2) AS i RETURNING id",
            label,
            learners,
        )
    )
    course_id = await conn.fetchval(
        "INSERT INTO courses (owner_id, title) VALUES ($1, 'Signals and systems') RETURNING id",
        owner,
    )
    durations = np.round(rng.uniform(240.0, 1500.0, videos), 2)
    video_ids = sorted(  # identities in insertion order: course order
        row["id"]
        for row in await conn.fetch(
            "INSERT INTO contents (course_id, title, kind, position, duration_seconds)"
            " SELECT $1, 'Lecture ' || k, 'video', k, d"
            " FROM unnest($2::float8[]) WITH ORDINALITY AS v (d, k) ORDER BY k RETURNING id",
            course_id,
            durations.tolist(),
        )
    )

    # Each learner's span of activity, in hours before `now`: from `first` to `last`.
    first = rng.uniform(1.0, days * 24.0, learners)
    last = first * (1.0 - rng.uniform(0.1, 1.0, learners))
    enrolled_at = [
        now - timedelta(hours=h + 48.0 * r)
        for h, r in zip(first, rng.random(learners), strict=True)
    ]
    await conn.copy_records_to_table(
        "enrollments",
        records=[(course_id, uid, at) for uid, at in zip(learner_ids, enrolled_at, strict=True)],
        columns=["course_id", "user_id", "enrolled_at"],
    )

    reach = np.minimum(1 + np.floor(rng.exponential(REACH_SCALE, learners)), videos).astype(int)
    reach[rng.random(learners) < NEVER_STARTS] = 0
    who = np.repeat(np.arange(learners), reach)
    video = np.arange(who.size) - np.repeat(np.cumsum(reach) - reach, reach)
    kept = rng.random(who.size) >= SKIPS_VIDEO
    who, video = who[kept], video[kept]
    played = _played(rng, durations, video)
    pace = (first - last)[who] * video / np.maximum(reach[who] - 1, 1)
    hours_ago = first[who] - pace

    progress_records, activity_records, bounds = _rows(
        rng,
        who=[learner_ids[i] for i in who.tolist()],
        contents=[video_ids[k] for k in video.tolist()],
        durations=durations[video].tolist(),
        played=played,
        hours_ago=hours_ago.tolist(),
        course_id=course_id,
        now=now,
    )
    await conn.copy_records_to_table(
        "progress",
        records=progress_records,
        columns=[
            "user_id",
            "content_id",
            "course_id",
            "position",
            "position_at",
            "played",
            "watched_seconds",
            "duration",
            "completed_at",
            "updated_at",
        ],
    )
    await conn.copy_records_to_table(
        "activity_hourly",
        records=activity_records,
        columns=["user_id", "content_id", "hour", "course_id", "watched_seconds", "completions"],
    )
    await conn.execute("ANALYZE users, courses, contents, enrollments, progress, activity_hourly")
    return AnalyticsCourse(
        course_id=course_id,
        owner_id=owner,
        learners=learner_ids,
        videos=video_ids,
        durations=durations.tolist(),
        progress_rows=len(progress_records),
        bounds=bounds,
        activity_rows=len(activity_records),
    )


def _played(
    rng: np.random.Generator, durations: np.ndarray, video: np.ndarray
) -> list[list[float]]:
    """Each row's played segments, flat `[start, end, ...]`, sorted and disjoint as stored
    progress is; row `i` is of video `video[i]`."""
    n = video.size
    length = durations[video]
    dull = rng.uniform(0.15, 0.85, (durations.size, 2)) * durations[:, None]
    stop = length * rng.beta(1.2, 2.0, n)
    moment = dull[video, rng.integers(0, 2, n)] + rng.normal(0.0, 4.0, n)
    stop = np.where(rng.random(n) < LEAVES_AT_DULL_MOMENT, moment, stop)
    stop = np.clip(np.where(rng.random(n) < WATCHES_TO_END, length, stop), 1.0, length)
    skipping = rng.random(n) < SKIPS_AROUND
    rows: list[list[float]] = []
    for i, (end, skips) in enumerate(zip(stop.tolist(), skipping.tolist(), strict=True)):
        if not skips:
            rows.append([0.0, end])
            continue
        points = np.sort(rng.uniform(0.0, length[i], 2 * int(rng.integers(2, 6))))
        if rng.random() < 0.7:  # most who skip around still start at the start
            points[0] = 0.0
        rows.append(points.tolist())
    return rows


def _rows(
    rng: np.random.Generator,
    *,
    who: list[int],
    contents: list[int],
    durations: list[float],
    played: list[list[float]],
    hours_ago: list[float],
    course_id: int,
    now: datetime,
) -> tuple[list[tuple], list[tuple], int]:
    """The progress rows, the activity rows and the number of bounds, for COPY."""
    now_hour = _hour(now)
    progress: list[tuple] = []
    activity: list[tuple] = []
    bounds = 0
    minutes = rng.uniform(0.0, 60.0, len(who)).tolist()
    for user, content, duration, segments, ago, minute in zip(
        who, contents, durations, played, hours_ago, minutes, strict=True
    ):
        watched = math.fsum(e - s for s, e in zip(segments[0::2], segments[1::2], strict=True))
        hours = min(3, max(1, math.ceil(watched / SECONDS_PER_CREDITED_HOUR)))
        first = min(_hour(now - timedelta(hours=ago)), now_hour - (hours - 1) * HOUR)
        at = min(first + (hours - 1) * HOUR + timedelta(minutes=minute), now)
        completed = watched >= COMPLETION_THRESHOLD * duration
        progress.append(
            (
                user,
                content,
                course_id,
                segments[-1],
                at,
                segments,
                watched,
                duration,
                at if completed else None,
                at,
            )
        )
        activity.extend(
            (
                user,
                content,
                first + h * HOUR,
                course_id,
                watched / hours,
                int(completed and h == hours - 1),
            )
            for h in range(hours)
        )
        bounds += len(segments)
    return progress, activity, bounds


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)
