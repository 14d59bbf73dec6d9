"""The demo course's rows (asyncpg; run through `Database`): see `lms.demo`."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from proto.api import Role


@dataclass(frozen=True)
class Lecture:
    """The demo course's video lecture, and who teaches it."""

    instructor_id: int
    instructor_role: Role
    course_id: int
    content_id: int
    has_source: bool  # a transcode job or a published video, so nothing to make


async def seed(
    conn: asyncpg.Connection, password_hash: str, instructor_email: str, learner_email: str
) -> Lecture | None:
    """The demo instructor and learner (both with `password_hash`), and the demo course with
    the learner enrolled, unless any course exists already; then the demo lecture."""
    # Two nodes starting together on one database must seed once.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('lms_demo_seed'))")
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM courses)"):
        await _insert(conn, password_hash, instructor_email, learner_email)
    return await lecture(conn, instructor_email)


async def lecture(conn: asyncpg.Connection, instructor_email: str) -> Lecture | None:
    """The first video content of the demo instructor's first course; None when the demo was
    never seeded (courses existed before) or its course or lecture was deleted since."""
    row = await conn.fetchrow(
        """
        SELECT u.id AS instructor_id, u.role AS instructor_role, co.id AS course_id,
               c.id AS content_id,
               EXISTS (SELECT 1 FROM jobs j WHERE j.content_id = c.id)
                   OR EXISTS (SELECT 1 FROM videos v WHERE v.content_id = c.id) AS has_source
        FROM users u
        JOIN courses co ON co.owner_id = u.id
        JOIN contents c ON c.course_id = co.id AND c.kind = 'video'
        WHERE lower(u.email) = lower($1)
        ORDER BY co.id, c.position, c.id
        LIMIT 1
        """,
        instructor_email,
    )
    if row is None:
        return None
    return Lecture(**{**dict(row), "instructor_role": Role(row["instructor_role"])})


async def _insert(
    conn: asyncpg.Connection, password_hash: str, instructor_email: str, learner_email: str
) -> None:
    instructor = await conn.fetchval(
        """
        INSERT INTO users (email, name, password_hash, role)
        VALUES ($1, 'Demo Instructor', $3, 'instructor'), ($2, 'Demo Learner', $3, 'learner')
        ON CONFLICT ((lower(email))) DO NOTHING
        RETURNING id
        """,
        instructor_email,
        learner_email,
        password_hash,
    )
    instructor = instructor or await conn.fetchval(
        "SELECT id FROM users WHERE email = $1", instructor_email
    )
    course = await conn.fetchval(
        """
        INSERT INTO courses (owner_id, title, description) VALUES ($1, $2, $3) RETURNING id
        """,
        instructor,
        "Welcome to the LMS",
        "A demo course: one text lesson and a short lecture to watch.",
    )
    module = await conn.fetchval(
        "INSERT INTO modules (course_id, title, position) VALUES ($1, 'Getting started', 0) "
        "RETURNING id",
        course,
    )
    await conn.execute(
        """
        INSERT INTO contents (course_id, module_id, title, kind, position, body) VALUES
            ($1, $2, 'How this course works', 'text', 0,
             'Watch the lecture; your progress is saved as you go.'),
            ($1, $2, 'First lecture', 'video', 1, NULL)
        """,
        course,
        module,
    )
    await conn.execute(
        "INSERT INTO enrollments (course_id, user_id) "
        "SELECT $1, id FROM users WHERE email = $2 ON CONFLICT DO NOTHING",
        course,
        learner_email,
    )
