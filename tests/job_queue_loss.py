"""Break a node's transcoder pool for real, for tests of what a node does when a core actor is
given up on: the table it claims jobs from goes away, so every claim fails with an error that
is no outage (the pool crashes, rather than waiting for the database to come back), and its
supervisor gives up after the restarts its policy allows; and what the process says then."""

from __future__ import annotations

import asyncpg

from lms.store.database import Database
from tests.e2e.nodes import log_events


async def _rename_jobs(conn: asyncpg.Connection) -> None:
    await conn.execute("ALTER TABLE jobs RENAME TO jobs_elsewhere")


async def lose_the_job_queue(db: Database) -> None:
    await db.transaction(_rename_jobs)


def assert_stopped_for_the_lost_queue(log: str, command: str) -> None:
    """`log`, what `lms COMMAND` wrote to stderr, shows it stopped because its transcoder pool
    was given up on: a shutdown logged as an error naming the pool, and besides the JSON log one
    line for the operator, no traceback."""
    [stop] = [e for e in log_events(log) if e["event"] == "shutdown_requested"]
    assert (stop["reason"], stop["actor"], stop["level"]) == (
        "actor_gave_up",
        "transcoder_pool",
        "error",
    )
    [said] = [line for line in log.splitlines() if not line.startswith("{")]
    assert said.startswith(f"lms {command}: actor 'transcoder_pool': gave up after "), said
