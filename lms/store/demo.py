"""The demo course's rows (asyncpg; run through `Database`): see `lms.demo`."""

from __future__ import annotations

import asyncpg


async def seed(
    conn: asyncpg.Connection, password_hash: str, instructor_email: str, learner_email: str
) -> None:
    """The demo instructor and learner (both with `password_hash`), and the demo course with
    the learner enrolled, unless any course exists already."""
    # Two nodes starting together on one database must seed once.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('lms_demo_seed'))")
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM courses)"):
        return
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
        "A demo course: one text lesson and one video slot waiting for an upload.",
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
