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

Four changes to trio-asyncio's loop, made here, all to behave as asyncio's own loop does:

- It runs one asyncio callback per trio scheduling pass, and a database round trip is several
  callbacks (data received, the task's step, the reader's synchronisation), each then paying a
  whole pass (an epoll call, the run queue) under load. `_run_ready_together` makes each pass
  run every callback that was ready when it began; callbacks those schedule wait for the next
  pass, so neither side starves.
- It checks every callback it is given (`call_soon`, `call_later`) for being a coroutine, which
  asyncio does only in debug mode: `inspect` on asyncpg's compiled callbacks, ~0.8 % of a core
  at the live benchmark's load. `_check_callbacks_in_debug_only` keeps the check for debug mode.
- It raises every error the loop reports (a callback that raised, a future whose exception
  nobody retrieved) into its own nursery, which ends the loop and everything opened inside
  the bridge: the whole node. asyncio logs them. Libraries leave such errors behind in normal
  operation: asyncpg's pool reconnecting in the background, when closed or timed out
  mid-handshake, sets an exception on a future it no longer awaits. `_log_orphaned_errors`
  logs them instead; an error in work that crossed the bridge still reaches its caller.
- It keeps a cancelled timer in its heap until the timer falls due, and the timer keeps the
  context it was made in. asyncpg's pool starts a timer (the idle lifetime, 60 s) on every
  release and cancels it on the next acquire, from inside the request that crossed, whose
  context holds that request (Quart's request context: headers, scope, body): a node kept every
  request of the last minute alive, ~11 KB each, hundreds of MB at a few hundred requests a
  second. `_forget_cancelled_timers` drops a cancelled timer's context at once and, as asyncio
  does, rebuilds the heap without the cancelled timers once they are most of it.

Those internals are why pyproject.toml allows one minor version of each package
(`SUPPORTED`), and why importing this module checks that every internal name it patches or reads
is there (`check_internals`): a newer trio-asyncio fails at start with the name it lacks, not
with an AttributeError on the first query, or worse, a patch that silently no longer applies.

This module is the only one that imports trio_asyncio.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any, ParamSpec, TypeVar

import structlog
import trio
import trio_asyncio

from lms.domain.histogram import Histogram, HistogramSnapshot

P = ParamSpec("P")
T = TypeVar("T")

log = structlog.get_logger()

# The versions this module's patches were written and tested against; pyproject.toml pins the
# same (a test holds the two together).
SUPPORTED = {"trio": ">=0.35,<0.36", "trio-asyncio": ">=0.16,<0.17"}

# How long each `call` took as trio saw it: both crossings and the asyncio work between them
# (`lms_bridge_call_seconds`). One per process, as the loop is: two perf_counter reads and a
# bisect, under a microsecond beside a crossing's tens.
_calls = Histogram()


def require_internals(owner: object, paths: Iterable[str], *, package: str) -> None:
    """Check that every dotted attribute path in `paths` can be read from `owner`.

    Raises:
      ImportError: naming the first missing attribute, the installed version of `package`
          and the versions this module supports.
    """
    label = getattr(owner, "__qualname__", type(owner).__qualname__)
    for path in paths:
        target = owner
        for name in path.split("."):
            if not hasattr(target, name):
                raise ImportError(
                    f"lms.store.bridge patches {package} internals, and {label}.{path} is "
                    f"missing from the installed {package} {version(package)}: install "
                    f"{package}{SUPPORTED[package]}"
                )
            target = getattr(target, name)


def check_internals() -> None:
    """Check the internals this module patches and reads (the loop's instance attributes are
    checked when a loop opens). Runs at import.

    Raises:
      ImportError: as `require_internals` does.
    """
    require_internals(
        trio_asyncio.TrioEventLoop,
        ("_main_loop_one", "_check_callback", "_timer_handle_cancelled"),
        package="trio-asyncio",
    )
    send, receive = trio.open_memory_channel[object](0)
    with send, receive:
        require_internals(receive, ("_state.data",), package="trio")


check_internals()


@asynccontextmanager
async def open_bridge() -> AsyncIterator[None]:
    """Run an asyncio loop for as long as the block lasts; tasks started inside inherit it."""
    async with trio_asyncio.open_loop() as loop:
        _run_ready_together(loop)
        _check_callbacks_in_debug_only(loop)
        _forget_cancelled_timers(loop)
        loop.set_exception_handler(_log_orphaned_errors)
        yield


def _run_ready_together(loop: trio_asyncio.TrioEventLoop) -> None:
    # The loop's main task looks `_main_loop_one` up on the instance at every pass, so this
    # reaches this loop only. Pinned to trio-asyncio's internals: `_main_loop_one(no_wait=True)`
    # runs one due timer or one queued callback without waiting, raising WouldBlock when there
    # is none; `_q_recv`, made with the loop, is the callback queue. And to trio's: the
    # queue's buffer is the deque `_state.data` (its `statistics()` built an object per pass).
    require_internals(loop, ("_q_recv",), package="trio-asyncio")
    run_one = loop._main_loop_one
    queued = loop._q_recv._state.data

    async def run_ready(no_wait: bool = False) -> None:
        await run_one(no_wait)
        for _ in range(len(queued)):
            try:
                await run_one(no_wait=True)
            except trio.WouldBlock:
                return

    loop._main_loop_one = run_ready


def _check_callbacks_in_debug_only(loop: trio_asyncio.TrioEventLoop) -> None:
    # Pinned to trio-asyncio's internals: its scheduling methods call `self._check_callback`,
    # looked up on the instance, as the main loop's `_main_loop_one` is.
    if not loop.get_debug():
        loop._check_callback = _accept


def _accept(callback: object, method: str) -> None:
    pass


# asyncio's own loop compacts its heap past the same share and count (base_events.py).
_COMPACT_SHARE = 0.5
_COMPACT_MIN = 100


def _forget_cancelled_timers(loop: trio_asyncio.TrioEventLoop) -> None:
    # Pinned to trio-asyncio's internals: `TimerHandle.cancel` calls the loop's
    # `_timer_handle_cancelled`, looked up on the instance (a no-op there), and `_timers` is the
    # loop's heap of TimerHandles, from which a cancelled one is only dropped when due. A
    # cancelled handle's context is never used again: the loop skips cancelled handles.
    require_internals(loop, ("_timers",), package="trio-asyncio")
    timers: list[asyncio.TimerHandle] = loop._timers
    cancelled = 0

    def forget(handle: asyncio.TimerHandle) -> None:
        nonlocal cancelled
        handle._context = None  # type: ignore[attr-defined]
        cancelled += 1
        if cancelled > _COMPACT_MIN and cancelled > _COMPACT_SHARE * len(timers):
            timers[:] = [timer for timer in timers if not timer.cancelled()]
            heapq.heapify(timers)
            cancelled = 0

    loop._timer_handle_cancelled = forget


def _log_orphaned_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exception = context.get("exception")
    log.error(
        "asyncio_error",
        message=context.get("message", "unhandled error in the event loop"),
        exc_info=exception if isinstance(exception, BaseException) else None,
    )


async def call(fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Await the asyncio coroutine function `fn(*args, **kwargs)` from trio.

    Trio cancellation cancels the asyncio task, and asyncio exceptions propagate unchanged.
    """
    started = time.perf_counter()
    try:
        return await trio_asyncio.aio_as_trio(fn)(*args, **kwargs)
    finally:
        _calls.observe(time.perf_counter() - started)


def call_seconds() -> HistogramSnapshot:
    """The durations of every `call` in this process so far, failed and cancelled ones too."""
    return _calls.snapshot()
