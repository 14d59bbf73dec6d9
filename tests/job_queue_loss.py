"""Break a node's transcoder pool for real, for tests of what a node does when a core actor is
given up on: the table it claims jobs from goes away, so every claim fails with an error that
is no outage (the pool crashes, rather than waiting for the database to come back), and its
supervisor gives up after the restarts its policy allows."""

from __future__ import annotations

import asyncpg

from lms.store.database import Database


async def _rename_jobs(conn: asyncpg.Connection) -> None:
    await conn.execute("ALTER TABLE jobs RENAME TO jobs_elsewhere")


async def lose_the_job_queue(db: Database) -> None:
    await db.transaction(_rename_jobs)
