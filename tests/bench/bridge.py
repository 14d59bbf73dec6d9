"""What one trio -> asyncio bridge hop costs.

Times a trivial asyncpg query (`SELECT 1` on one connection) and a Redis PING, each called from
trio through `lms.store.bridge.call`, beside the same calls made from plain asyncio in the same
run; and the full unit of work the store uses (`Database.transaction`: pool acquire, BEGIN,
query, COMMIT) beside its asyncio equivalent. Prints p50/p99 and the ratio to the baseline.

    python -m tests.bench.bridge [--n 3000]

Uses LMS_TEST_DATABASE_URL / LMS_TEST_REDIS_URL when set, else starts throwaway servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import time
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import numpy as np
import redis.asyncio
import trio

from lms.store import bridge
from lms.store.database import Database
from tests.services import scratch_dir, start_postgres, start_redis

Timed = Callable[[], Awaitable[object]]


async def _time(call: Timed, n: int) -> np.ndarray:
    """Microseconds per call. Awaits nothing but `call`, so it runs under asyncio and trio alike."""
    for _ in range(n // 10):  # warm up
        await call()
    samples = np.empty(n)
    for i in range(n):
        start = time.perf_counter_ns()
        await call()
        samples[i] = time.perf_counter_ns() - start
    return samples / 1000.0


async def plain_asyncio(dsn: str, redis_url: str, n: int) -> dict[str, np.ndarray]:
    conn = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    client = redis.asyncio.Redis.from_url(redis_url)

    async def unit() -> object:
        async with pool.acquire() as c, c.transaction():
            return await c.fetchval("SELECT 1")

    try:
        return {
            "asyncpg SELECT 1": await _time(lambda: conn.fetchval("SELECT 1"), n),
            "redis PING": await _time(client.ping, n),
            "pool + transaction + SELECT 1": await _time(unit, n),
        }
    finally:
        await conn.close()
        await pool.close()
        await client.aclose()


async def through_bridge(dsn: str, redis_url: str, n: int) -> dict[str, np.ndarray]:
    async with bridge.open_bridge():
        conn = await bridge.call(asyncpg.connect, dsn)
        db = await Database.connect(dsn, min_size=1, max_size=1)
        client = redis.asyncio.Redis.from_url(redis_url)

        async def select(c: asyncpg.Connection) -> object:
            return await c.fetchval("SELECT 1")

        try:
            return {
                "asyncpg SELECT 1": await _time(lambda: bridge.call(conn.fetchval, "SELECT 1"), n),
                "redis PING": await _time(lambda: bridge.call(client.ping), n),
                "pool + transaction + SELECT 1": await _time(lambda: db.transaction(select), n),
            }
        finally:
            await bridge.call(conn.close)
            await db.close()
            await bridge.call(client.aclose)


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str]]:
    dsn, url = os.environ.get("LMS_TEST_DATABASE_URL"), os.environ.get("LMS_TEST_REDIS_URL")
    with contextlib.ExitStack() as stack:
        if not dsn:
            pg = start_postgres(stack.enter_context(scratch_dir("lms-bench-pg-")))
            stack.callback(pg.stop)
            dsn = pg.dsn
        if not url:
            rd = start_redis(stack.enter_context(scratch_dir("lms-bench-redis-")))
            stack.callback(rd.stop)
            url = rd.url
        yield dsn, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="calls per measurement")
    args = parser.parse_args()
    with servers() as (dsn, url):
        baseline = asyncio.run(plain_asyncio(dsn, url, args.n))
        bridged = trio.run(through_bridge, dsn, url, args.n)
    print(f"bridge hop, {args.n} sequential calls each; {platform.node()}, {os.cpu_count()} cores")
    print("| call | asyncio p50 / p99 (us) | trio via bridge p50 / p99 (us) | p50 ratio |")
    print("|---|---|---|---|")
    for name, base in baseline.items():
        ours = bridged[name]
        b50, b99 = np.percentile(base, [50, 99])
        o50, o99 = np.percentile(ours, [50, 99])
        print(f"| {name} | {b50:.0f} / {b99:.0f} | {o50:.0f} / {o99:.0f} | {o50 / b50:.2f}x |")


if __name__ == "__main__":
    main()
