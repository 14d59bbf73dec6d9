"""The database from trio: connections kept between a hot caller's units of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
import trio

from lms.store.bridge import open_bridge
from lms.store.database import Database, StoreUnavailable


@asynccontextmanager
async def database(dsn: str) -> AsyncIterator[Database]:
    async with open_bridge():
        db = await Database.connect(dsn, min_size=2, max_size=4)
        try:
            yield db
        finally:
            with trio.fail_after(10):  # the pool's close waits for every connection it lent
                await db.close()


async def backend(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT pg_backend_pid()")


async def test_a_hot_caller_keeps_its_connection_out_of_the_pool_between_units(
    database_url: str,
) -> None:
    async with database(database_url) as db:
        first = await db.kept_connection(backend)
        stats = db.statistics()
        assert (stats["idle"], stats["kept"]) == (stats["size"] - 1, 1)
        assert [await db.kept_connection(backend) for _ in range(3)] == [first] * 3


async def test_a_unit_that_fails_gives_its_connection_back_to_the_pool(database_url: str) -> None:
    async def broken(conn: asyncpg.Connection) -> None:
        await conn.fetchval("SELECT 1 / 0")

    async with database(database_url) as db:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await db.kept_connection(broken)
        stats = db.statistics()
        assert (stats["idle"], stats["kept"]) == (stats["size"], 0)
        await db.kept_connection(backend)  # and the next unit gets one


async def test_a_kept_connection_postgresql_closed_is_replaced(database_url: str) -> None:
    """A restarted or overloaded PostgreSQL may end a connection while it is kept: at most the
    unit that finds it dead fails (as unavailable, to be retried), and the next gets a new one."""
    async with database(database_url) as db:
        killed = await db.kept_connection(backend)

        async def terminate(conn: asyncpg.Connection) -> None:
            await conn.execute("SELECT pg_terminate_backend($1)", killed)

        await db.connection(terminate)
        try:
            replaced = await db.kept_connection(backend)
        except StoreUnavailable:
            replaced = await db.kept_connection(backend)
        assert replaced != killed
