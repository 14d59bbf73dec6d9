"""The trio -> asyncio bridge: what crosses it, and that both schedulers keep running."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import tomllib
import weakref
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
import structlog
import trio
import trio.testing
import trio_asyncio

from lms.store import bridge


async def test_results_and_exceptions_cross_unchanged() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def fail() -> None:
        await asyncio.sleep(0)
        raise LookupError("no such row")

    async with bridge.open_bridge():
        assert await bridge.call(double, 21) == 42
        with pytest.raises(LookupError, match="no such row"):
            await bridge.call(fail)


async def test_cancelling_the_trio_caller_cancels_the_asyncio_work() -> None:
    cancelled = trio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with bridge.open_bridge():
        with trio.move_on_after(0.05) as scope:
            await bridge.call(forever)
        assert scope.cancelled_caught
        with trio.fail_after(5):
            await cancelled.wait()


async def test_callbacks_run_in_the_order_they_were_scheduled() -> None:
    async def schedule() -> list[int]:
        loop = asyncio.get_running_loop()
        seen: list[int] = []
        done = loop.create_future()
        for i in range(1000):
            loop.call_soon(seen.append, i)
        loop.call_soon(done.set_result, None)
        await done
        return seen

    async with bridge.open_bridge():
        assert await bridge.call(schedule) == list(range(1000))


async def test_an_asyncio_task_that_never_waits_does_not_starve_trio() -> None:
    """Each trio pass runs the asyncio callbacks that were ready when it began, not the ones
    they schedule: an asyncio task yielding with sleep(0) in a loop leaves trio its turn."""
    spins = 20_000
    trio_ran_at: list[int] = []
    spun = 0

    async def spin() -> None:
        nonlocal spun
        for spun in range(1, spins + 1):  # noqa: B007 (read by the trio task)
            await asyncio.sleep(0)

    async def trio_side() -> None:
        await trio.lowlevel.checkpoint()
        trio_ran_at.append(spun)

    async with bridge.open_bridge(), trio.open_nursery() as nursery:
        nursery.start_soon(bridge.call, spin)
        await trio.lowlevel.checkpoint()
        nursery.start_soon(trio_side)
    assert trio_ran_at
    assert trio_ran_at[0] < spins


async def test_callbacks_are_type_checked_in_asyncio_debug_mode_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def not_a_callback() -> None:
        pass

    async def schedule() -> None:
        handle = asyncio.get_running_loop().call_soon(not_a_callback)  # type: ignore[arg-type]
        handle.cancel()

    async with bridge.open_bridge():
        await bridge.call(schedule)  # as asyncio's own loop: no check outside debug mode
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")
    async with bridge.open_bridge():
        with pytest.raises(TypeError, match="coroutines cannot be used"):
            await bridge.call(schedule)


async def test_an_error_an_asyncio_library_leaves_behind_is_logged_and_the_bridge_goes_on() -> None:
    """asyncio reports such errors (a callback that raised, a future whose exception nobody
    retrieved) to its exception handler; trio-asyncio's own would end the loop and the node."""

    def orphaned() -> None:
        raise ConnectionError("unexpected connection_lost() call")

    async def leave_behind() -> None:
        asyncio.get_running_loop().call_soon(orphaned)
        await asyncio.sleep(0)

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    with structlog.testing.capture_logs() as logs:
        async with bridge.open_bridge():
            await bridge.call(leave_behind)
            await trio.testing.wait_all_tasks_blocked()
            assert await bridge.call(answer) == 42

    (logged,) = [entry for entry in logs if entry["event"] == "asyncio_error"]
    assert logged["log_level"] == "error"
    assert isinstance(logged["exc_info"], ConnectionError)


class Request:
    """Stands for what a request's context holds (Quart's request context, its headers)."""


REQUEST: contextvars.ContextVar[Request] = contextvars.ContextVar("request")


async def test_a_cancelled_asyncio_timer_lets_go_of_the_request_it_was_started_in() -> None:
    """asyncpg's pool starts an idle timer on every release and cancels it on the next acquire:
    a cancelled timer must not keep the request that crossed alive until it would have fallen
    due (a minute of requests, hundreds of MB)."""
    requests: list[weakref.ref[Request]] = []

    async def start_then_cancel_a_timer() -> None:
        asyncio.get_running_loop().call_later(60, print).cancel()

    async with bridge.open_bridge():
        for _ in range(300):
            request = Request()
            requests.append(weakref.ref(request))
            token = REQUEST.set(request)
            try:
                await bridge.call(start_then_cancel_a_timer)
            finally:
                REQUEST.reset(token)
            del request
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        assert [ref for ref in requests if ref() is not None] == []
        # Most of the heap cancelled: rebuilt without them, as asyncio's own loop does.
        loop = trio_asyncio.current_loop.get()
        assert len(loop._timers) < 300 / 2


def test_the_installed_trio_and_trio_asyncio_have_every_internal_the_bridge_patches() -> None:
    bridge.check_internals()  # also ran at import; the loop's own attribute when one opens


def test_a_missing_internal_is_named_with_the_versions_the_bridge_supports() -> None:
    class Channel:
        _state = SimpleNamespace(buffer=[])  # as if a release had renamed `data`

    class Loop:
        _q_recv = Channel()

    with pytest.raises(ImportError) as raised:
        bridge.require_internals(Loop(), ("_q_recv", "_q_recv._state.data"), package="trio")
    message = str(raised.value)
    assert "Loop._q_recv._state.data is missing" in message
    assert f"the installed trio {version('trio')}" in message
    assert "install trio>=0.35,<0.36" in message


def test_pyproject_pins_the_versions_the_bridge_supports() -> None:
    with (Path(__file__).parents[3] / "pyproject.toml").open("rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    for package, supported in bridge.SUPPORTED.items():
        assert package + supported in dependencies
