"""The one crossing between trio and asyncio.

asyncpg, redis.asyncio and aiosmtplib are asyncio libraries; the node is a trio program.
trio-asyncio runs an asyncio loop inside trio, kept in a context variable that every task started
afterwards inherits. So the loop is opened once, *around* the HTTP server (not in a startup hook,
where it would not reach the request handlers), and every call into an asyncio library goes
through `call()`.

Theory of operation: `call(fn, *args)` schedules `fn(*args)` on the asyncio loop and waits for it in
trio. Each crossing costs a round trip through both schedulers, so callers that do several asyncio
operations that belong together (acquire a connection, open a transaction, run three statements)
write them as one asyncio coroutine function and cross once.

This module is the only one that imports trio_asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

import trio_asyncio

P = ParamSpec("P")
T = TypeVar("T")


@asynccontextmanager
async def open_bridge() -> AsyncIterator[None]:
    """Run an asyncio loop for as long as the block lasts; tasks started inside inherit it."""
    async with trio_asyncio.open_loop():
        yield


async def call(fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Await the asyncio coroutine function `fn(*args, **kwargs)` from trio.

    Trio cancellation cancels the asyncio task, and asyncio exceptions propagate unchanged.
    """
    return await trio_asyncio.aio_as_trio(fn)(*args, **kwargs)
