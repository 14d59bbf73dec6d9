"""Activity history (asyncpg; run through `Database`): what the dashboards read from
`activity_hourly`, which the progress writer fills (`lms.store.progress`).

Rows are per UTC hour; days are the reader's to derive in the learner's time zone (a zone
whose offset is not whole hours splits an hour between two local days: the hour's start
decides). A range [since, until) takes every hour that overlaps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import asyncpg


class HourActivity(NamedTuple):
    """What was watched and completed in one UTC hour (starting at `hour`)."""

    hour: datetime
    watched_seconds: float
    completions: int


async def user_activity(
    conn: asyncpg.Connection, user_id: int, since: datetime, until: datetime
) -> list[HourActivity]:
    """The user's activity per hour over [since, until), over every content, oldest first;
    hours with none are left out."""
    return await _hours(
        conn,
        "user_id = $1 AND hour > $2::timestamptz - interval '1 hour' AND hour < $3",
        user_id,
        since,
        until,
    )


async def course_activity(
    conn: asyncpg.Connection, course_id: int, since: datetime, until: datetime
) -> list[HourActivity]:
    """The course's activity per hour over [since, until), over every learner and content,
    oldest first; hours with none are left out."""
    return await _hours(
        conn,
        "course_id = $1 AND hour > $2::timestamptz - interval '1 hour' AND hour < $3",
        course_id,
        since,
        until,
    )


async def active_users(
    conn: asyncpg.Connection, since: Sequence[datetime], *, course_id: int | None = None
) -> list[int]:
    """For each time in `since`, how many distinct users had activity at or after it (to the
    hour: an hour that ends after it counts) - in the course, or anywhere. In one statement:
    for DAU/WAU/MAU, or a course's active learners over 1, 7 and 30 days."""
    if not since:
        return []
    # Two statements rather than `$2 IS NULL OR ...`, whose generic plan could not use the
    # course's index.
    in_course, args = (
        ("", [list(since)])
        if course_id is None
        else ("AND course_id = $2", [list(since), course_id])
    )
    rows = await conn.fetch(
        f"""
        WITH latest AS (
            SELECT user_id, max(hour) AS hour
            FROM activity_hourly
            WHERE hour > (SELECT min(s) FROM unnest($1::timestamptz[]) AS s) - interval '1 hour'
                  {in_course}
            GROUP BY user_id
        )
        SELECT (SELECT count(*) FROM latest WHERE hour > s.since - interval '1 hour')
        FROM unnest($1::timestamptz[]) WITH ORDINALITY AS s (since, i)
        ORDER BY s.i
        """,  # noqa: S608 - {in_course} is one of two fixed strings
        *args,
    )
    return [row[0] for row in rows]


async def busiest_courses(conn: asyncpg.Connection, since: datetime, limit: int) -> list[int]:
    """The `limit` courses with the most learners active at or after `since` (to the hour),
    then the most watched, busiest first: what a node starting cold should cache first."""
    rows = await conn.fetch(
        """
        SELECT course_id FROM activity_hourly
        WHERE hour > $1::timestamptz - interval '1 hour'
        GROUP BY course_id
        ORDER BY count(DISTINCT user_id) DESC, sum(watched_seconds) DESC, course_id
        LIMIT $2
        """,
        since,
        limit,
    )
    return [row["course_id"] for row in rows]


async def _hours(conn: asyncpg.Connection, where: str, *args: object) -> list[HourActivity]:
    rows = await conn.fetch(
        f"""
        SELECT hour, sum(watched_seconds) AS watched_seconds, sum(completions) AS completions
        FROM activity_hourly WHERE {where}
        GROUP BY hour ORDER BY hour
        """,  # noqa: S608 - `where` is a fixed string of its two callers
        *args,
    )
    return [HourActivity(row["hour"], row["watched_seconds"], row["completions"]) for row in rows]
