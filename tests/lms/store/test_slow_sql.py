"""Slow units of database work are logged by store function, never with the values they ran with."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import asyncpg
import pytest
import structlog
import trio

from lms.store.bridge import open_bridge
from lms.store.database import Database

THRESHOLD_MS = 100
# Far enough over the threshold that the sleep alone makes the unit slow.
SLEEP_SECONDS = 2 * THRESHOLD_MS / 1000
# A value a store function is given (an e-mail address, a token digest), that no log may show.
SECRET = "s3cret-parameter-7f3a9c"


@asynccontextmanager
async def open_slow_database(url: str) -> AsyncIterator[Database]:
    async with open_bridge():
        db = await Database.connect(url, min_size=1, max_size=2, slow_sql_ms=THRESHOLD_MS)
        try:
            yield db
        finally:
            with trio.fail_after(10):
                await db.close()


async def sleep_with(conn: asyncpg.Connection, value: str, *, seconds: float) -> str:
    return await conn.fetchval("SELECT $1::text FROM pg_sleep($2)", value, seconds)


async def echo(conn: asyncpg.Connection, value: str) -> str:
    return await conn.fetchval("SELECT $1::text", value)


async def sleep_then_fail(conn: asyncpg.Connection, value: str) -> None:
    await conn.execute("SELECT pg_sleep($1)", SLEEP_SECONDS)
    raise asyncpg.DataError(f"bad value {value}")


async def test_a_slow_unit_is_logged_once_by_function_name_without_its_values(
    database_url: str,
) -> None:
    name = f"{__name__}.sleep_with"
    with structlog.testing.capture_logs() as logs:
        async with open_slow_database(database_url) as db:
            # Callers hand the store partials (lms/progress/service.py): named by what they wrap.
            work = partial(sleep_with, seconds=SLEEP_SECONDS)
            assert await db.transaction(work, SECRET) == SECRET
            stats = db.statistics()

    [logged] = [entry for entry in logs if entry["event"] == "slow_sql"]
    assert logged["log_level"] == "warning"
    assert logged["function"] == name
    assert logged["duration_ms"] >= SLEEP_SECONDS * 1000
    assert SECRET not in repr(logs)
    assert stats["slow_calls"] == {name: 1}


async def test_a_fast_unit_logs_nothing_and_counts_nothing(database_url: str) -> None:
    with structlog.testing.capture_logs() as logs:
        async with open_slow_database(database_url) as db:
            assert await db.connection(echo, SECRET) == SECRET
            stats = db.statistics()
    assert [entry for entry in logs if entry["event"] == "slow_sql"] == []
    assert stats["slow_calls"] == {}


async def test_a_unit_that_fails_after_a_long_wait_is_counted_as_slow(database_url: str) -> None:
    with structlog.testing.capture_logs() as logs:
        async with open_slow_database(database_url) as db:
            with pytest.raises(asyncpg.DataError):
                await db.kept_connection(sleep_then_fail, SECRET)
            stats = db.statistics()
    [logged] = [entry for entry in logs if entry["event"] == "slow_sql"]
    assert logged["function"] == f"{__name__}.sleep_then_fail"
    assert SECRET not in repr([entry for entry in logs if entry["event"] == "slow_sql"])
    assert stats["slow_calls"] == {f"{__name__}.sleep_then_fail": 1}
