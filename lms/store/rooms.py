"""What the live layer reads: who may be in a course's room, and who an announcement reaches
(asyncpg; run through `Database.transaction`)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class RoomAccess:
    owner_id: int
    enrolled: bool
    name: str  # the user's display name


async def room_access(conn: asyncpg.Connection, course_id: int, user_id: int) -> RoomAccess | None:
    """The course's owner and the user's enrolment and name, in one query; None if there is no
    such course (or user)."""
    row = await conn.fetchrow(
        """
        SELECT c.owner_id, u.name,
               EXISTS (SELECT 1 FROM enrollments e
                       WHERE e.course_id = c.id AND e.user_id = u.id) AS enrolled
        FROM courses c, users u
        WHERE c.id = $1 AND u.id = $2
        """,
        course_id,
        user_id,
    )
    return None if row is None else RoomAccess(row["owner_id"], row["enrolled"], row["name"])


async def user_name(conn: asyncpg.Connection, user_id: int) -> str | None:
    return await conn.fetchval("SELECT name FROM users WHERE id = $1", user_id)


async def course_audience(conn: asyncpg.Connection, course_id: int) -> list[int]:
    """Everyone an announcement to the course is for: its enrolled learners and its owner."""
    rows = await conn.fetch(
        """
        SELECT user_id FROM enrollments WHERE course_id = $1
        UNION SELECT owner_id FROM courses WHERE id = $1
        """,
        course_id,
    )
    return [row["user_id"] for row in rows]
