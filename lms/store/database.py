"""PostgreSQL for trio code: an asyncpg pool behind the bridge.

Store functions (`lms/store/users.py`, ...) are plain asyncpg coroutines that take a connection.
`Database.transaction(fn, ...)` runs one of them inside a transaction on a pooled connection,
crossing the bridge once for the whole unit of work.

Every unit is timed from trio (the crossing, the pool's acquire and the statements: what its
caller waited), and one slower than the threshold logs `slow_sql` with the store function's name
and counts against it in `statistics()`. Never its arguments: they hold e-mail addresses,
password hashes and token digests. The count's keys are the code's store functions, so bounded.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypedDict, TypeVar, cast

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from lms.store import bridge

P = ParamSpec("P")
T = TypeVar("T")

Work = Callable[Concatenate[asyncpg.Connection, P], Awaitable[T]]

log = structlog.get_logger()

# A unit of work slower than this logs `slow_sql` (LMS_SLOW_SQL_MS).
SLOW_SQL_MS = 200

# A pooled connection idle this long is closed, so a restarted PostgreSQL is reconnected to
# rather than failing on a dead socket; `kept_connection` applies it to the ones it keeps.
IDLE_LIFETIME = 60.0
# Connections `kept_connection` keeps between units: the progress writer's batches in flight.
KEEP = 2

# Failures that mean "PostgreSQL is not reachable right now", as opposed to a bad query.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    # What the next query on a connection gets when PostgreSQL ended it while it sat idle
    # (the server's farewell arrives between queries and leaves the protocol mid-state);
    # units never share a connection, so this is never our own misuse.
    asyncpg.InternalClientError,
    TimeoutError,
)


class StoreUnavailable(Exception):
    """PostgreSQL could not be reached; the request may be retried later."""


class DatabaseStatistics(TypedDict):
    size: int
    idle: int
    kept: int  # out of the pool between a hot caller's units
    max_size: int
    # Units slower than the threshold, by store function ("lms.store.users.by_email").
    slow_calls: dict[str, int]


class Database:
    """A pool of PostgreSQL connections, used from trio.

    Create with `await Database.connect(dsn)`; close with `await db.close()`.
    """

    def __init__(self, pool: asyncpg.Pool, *, slow_sql_ms: int = SLOW_SQL_MS) -> None:
        self._pool = pool
        # Connections `kept_connection` holds between units, with when each was last used.
        self._kept: list[tuple[PoolConnectionProxy, float]] = []
        self._slow_after = slow_sql_ms / 1000
        self._slow_calls: Counter[str] = Counter()

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        slow_sql_ms: int = SLOW_SQL_MS,
    ) -> Database:
        try:
            pool = await bridge.call(
                asyncpg.create_pool,
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout,
                max_inactive_connection_lifetime=IDLE_LIFETIME,
                reset=_keep_session,
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        return cls(pool, slow_sql_ms=slow_sql_ms)

    async def transaction(self, fn: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(conn, *args, **kwargs)` inside one transaction; commit when it returns."""

        async def unit() -> T:
            async with self._pool.acquire() as conn, conn.transaction():
                return await fn(_as_connection(conn), *args, **kwargs)

        return await self._cross(fn, unit)

    async def connection(self, fn: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(conn, ...)` on a pooled connection with no transaction around it (for work
        that manages its own, such as migrations)."""

        async def unit() -> T:
            async with self._pool.acquire() as conn:
                return await fn(_as_connection(conn), *args, **kwargs)

        return await self._cross(fn, unit)

    async def kept_connection(self, fn: Work[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`connection` for a hot caller that runs a unit every few milliseconds (the progress
        writer): the connection is kept out of the pool between units, up to `KEEP` of them,
        sparing the pool's acquire and release (~90 us of CPU together here: asyncpg's release
        starts a task). A connection goes back to the pool when a unit fails or is cancelled
        on it (the pool checks it, and discards a broken one), when it sat unused as long as
        the pool's own idle limit, and when the database closes."""

        async def unit() -> T:
            conn = await self._take_kept()
            try:
                result = await fn(_as_connection(conn), *args, **kwargs)
            except BaseException:
                await self._pool.release(conn)
                raise
            if len(self._kept) < KEEP:
                self._kept.append((conn, time.monotonic()))
            else:
                await self._pool.release(conn)
            return result

        return await self._cross(fn, unit)

    async def _take_kept(self) -> PoolConnectionProxy:
        while self._kept:
            conn, used_at = self._kept.pop()
            if not conn.is_closed() and time.monotonic() - used_at < IDLE_LIFETIME:
                return conn
            await self._pool.release(conn)
        return await self._pool.acquire()

    async def ping(self) -> None:
        """Raise StoreUnavailable unless PostgreSQL answers a trivial query."""
        await self.connection(_select_one)

    async def close(self) -> None:
        await bridge.call(self._close)

    async def _close(self) -> None:
        while self._kept:  # the pool's close waits for every connection to come back
            await self._pool.release(self._kept.pop()[0])
        await self._pool.close()

    def statistics(self) -> DatabaseStatistics:
        return {
            "size": self._pool.get_size(),
            "idle": self._pool.get_idle_size(),
            "kept": len(self._kept),
            "max_size": self._pool.get_max_size(),
            "slow_calls": dict(self._slow_calls),
        }

    async def _cross(self, fn: Callable[..., object], unit: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        try:
            return await bridge.call(unit)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
        finally:
            # A unit that failed or was cancelled after a long wait was slow all the same.
            elapsed = time.perf_counter() - started
            if elapsed > self._slow_after:
                self._report_slow(fn, elapsed)

    def _report_slow(self, fn: Callable[..., object], elapsed: float) -> None:
        name = function_name(fn)
        self._slow_calls[name] += 1
        log.warning("slow_sql", function=name, duration_ms=round(elapsed * 1000, 1))


def _as_connection(conn: PoolConnectionProxy) -> asyncpg.Connection:
    """A pooled connection as the store's functions take it: the pool lends a proxy that
    forwards every Connection method, which asyncpg's stubs type apart from Connection."""
    return cast(asyncpg.Connection, conn)


def function_name(fn: Callable[..., object]) -> str:
    """`module.qualname` of a store function, seen through `functools.partial`: a name that
    says which code ran, and never the values it ran with."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    module = getattr(fn, "__module__", None) or "?"
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}.{qualname}"


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool as it is. asyncpg's default sends a reset query
    (unlock advisory locks, close cursors, unlisten, reset settings) on every release: one more
    round trip and one more transaction per unit of work, for session state this code never
    leaves behind (work runs in transactions; the migration lock is released by its holder).
    asyncpg still rolls back a transaction left open before this runs."""


async def _select_one(conn: asyncpg.Connection) -> None:
    await conn.fetchval("SELECT 1")
