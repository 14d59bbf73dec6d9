"""One statement on a test's database, straight to PostgreSQL (not through the API)."""

from __future__ import annotations

import asyncio

import asyncpg
import trio


async def sql(dsn: str, statement: str, *args: object) -> list[asyncpg.Record]:
    """Run `statement` on its own connection and return its rows.

    A node under test may run an asyncio loop in this thread (trio-asyncio), so the statement
    runs in another thread's loop.
    """

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(statement, *args)
        finally:
            await conn.close()

    return await trio.to_thread.run_sync(asyncio.run, run())
