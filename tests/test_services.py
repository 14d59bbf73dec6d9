"""The harness's backing servers work: a query on PostgreSQL, a round trip through Redis."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
import trio

from lms.store.bridge import call, open_bridge


async def test_postgres_dsn_gives_a_working_database(postgres_dsn: str) -> None:
    async def query() -> tuple[int, str]:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            return await conn.fetchval("SELECT 1 + 1"), await conn.fetchval("SHOW server_encoding")
        finally:
            await conn.close()

    with trio.fail_after(10):
        async with open_bridge():
            assert await call(query) == (2, "UTF8")


async def test_redis_url_gives_a_working_server(redis_url: str) -> None:
    async def round_trip() -> bytes | None:
        client = aioredis.from_url(redis_url)
        try:
            await client.set("lms:test:services", b"ok", ex=10)
            return await client.get("lms:test:services")
        finally:
            await client.aclose()

    with trio.fail_after(10):
        async with open_bridge():
            assert await call(round_trip) == b"ok"
