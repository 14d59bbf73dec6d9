"""The database from trio: connections kept between a hot caller's units of work."""

from __future__ import annotations

import asyncpg
import pytest

from lms.store.database import StoreUnavailable
from tests.databases import open_database


async def backend(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT pg_backend_pid()")


async def test_a_hot_caller_keeps_its_connection_out_of_the_pool_between_units(
    database_url: str,
) -> None:
    async with open_database(database_url) as db:
        first = await db.kept_connection(backend)
        stats = db.statistics()
        assert (stats["idle"], stats["kept"]) == (stats["size"] - 1, 1)
        assert [await db.kept_connection(backend) for _ in range(3)] == [first] * 3


async def test_a_unit_that_fails_gives_its_connection_back_to_the_pool(database_url: str) -> None:
    async def broken(conn: asyncpg.Connection) -> None:
        await conn.fetchval("SELECT 1 / 0")

    async with open_database(database_url) as db:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await db.kept_connection(broken)
        stats = db.statistics()
        assert (stats["idle"], stats["kept"]) == (stats["size"], 0)
        await db.kept_connection(backend)  # and the next unit gets one


async def test_a_kept_connection_postgresql_closed_is_replaced(database_url: str) -> None:
    """A restarted or overloaded PostgreSQL may end a connection while it is kept: at most the
    unit that finds it dead fails (as unavailable, to be retried), and the next gets a new one."""
    async with open_database(database_url) as db:
        killed = await db.kept_connection(backend)

        async def terminate(conn: asyncpg.Connection) -> None:
            await conn.execute("SELECT pg_terminate_backend($1)", killed)

        await db.connection(terminate)
        try:
            replaced = await db.kept_connection(backend)
        except StoreUnavailable:
            replaced = await db.kept_connection(backend)
        assert replaced != killed
