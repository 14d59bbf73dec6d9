from __future__ import annotations

import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing
from structlog.typing import EventDict

from actors.runtime import (
    ActorStopped,
    Inbox,
    Registry,
    RegistryStopped,
    Reply,
    RestartPolicy,
    SupervisorGaveUp,
)

Start = Callable[[Any], Awaitable[Any]]

FAST = RestartPolicy(max_restarts=2, within=60, backoff_initial=0.1, backoff_max=1)
IDLE = 10.0


class Boom(Exception):
    pass


@dataclass(frozen=True)
class Add:
    amount: int


@dataclass(frozen=True)
class Total:
    reply: Reply[tuple[str, int]]


@dataclass(frozen=True)
class Crash:
    pass


Message = Add | Total | Crash


class Counter:
    """A keyed actor: sums Adds, answers Total with (key, sum), crashes on Crash."""

    def __init__(self, key: str, inbox: Inbox[Message], handled: list[tuple[str, int]]) -> None:
        self.key = key
        self.inbox = inbox
        self.handled = handled
        self.total = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for message in self.inbox:
            match message:
                case Add(amount):
                    self.total += amount
                    self.handled.append((self.key, amount))
                case Total(reply):
                    reply.send((self.key, self.total))
                case Crash():
                    raise Boom(self.key)


class Counters:
    """The registry's factory: records every actor it makes."""

    def __init__(self) -> None:
        self.made: list[Counter] = []
        self.handled: list[tuple[str, int]] = []

    def __call__(self, key: str, inbox: Inbox[Message]) -> Counter:
        self.made.append(Counter(key, inbox, self.handled))
        return self.made[-1]

    def keys(self) -> list[str]:
        return [counter.key for counter in self.made]


def registry_of(counters: Counters, **options: Any) -> Registry[str, Message]:
    """The registry under test: capacity 4, idle after IDLE seconds, the FAST policy."""
    options = {"capacity": 4, "idle_timeout": IDLE, "policy": FAST, **options}
    return Registry("counters", counters, **options)


async def total(registry: Registry[str, Message], key: str) -> tuple[str, int]:
    return await registry.ask(key, Total, timeout=1)


async def test_starts_one_actor_per_key(start: Start) -> None:
    counters = Counters()
    registry = registry_of(counters)
    await start(registry)

    first = registry.get("course-1")
    assert registry.get("course-1") is first
    assert registry.get("course-2") is not first
    await registry.tell("course-1", Add(2))
    await registry.tell("course-1", Add(3))
    await registry.tell("course-2", Add(7))

    assert await total(registry, "course-1") == ("course-1", 5)
    assert await total(registry, "course-2") == ("course-2", 7)
    assert sorted(counters.keys()) == ["course-1", "course-2"]
    assert first.name == "counters['course-1']"


async def test_idle_actor_retires_and_a_later_get_starts_a_new_one(
    start: Start, autojump_clock: trio.testing.MockClock, logs: list[EventDict]
) -> None:
    counters = Counters()
    registry = registry_of(counters)
    await start(registry)

    old = registry.get("u1")
    await registry.tell("u1", Add(1))
    await trio.sleep(IDLE - 1)
    assert await total(registry, "u1") == ("u1", 1)  # activity restarts the idle clock
    await trio.sleep(IDLE - 1)
    assert registry.statistics().live == 1

    await trio.sleep(2)
    assert old.closed
    assert registry.statistics().live == 0
    assert [entry["key"] for entry in logs if entry["event"] == "actor_finished"] == ["u1"]

    new = registry.get("u1")
    assert new is not old
    assert await total(registry, "u1") == ("u1", 0)
    assert counters.keys() == ["u1", "u1"]


async def test_no_message_is_lost_across_retirement(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    counters = Counters()
    registry = registry_of(counters)
    await start(registry)

    # Each round sends once exactly at the idle deadline of the previous message, so the send
    # and the retirement race; trio orders them either way at random. Every send must land.
    for amount in range(1, 41):
        registry.tell_nowait("k", Add(amount))
        await trio.sleep(IDLE)
    await trio.testing.wait_all_tasks_blocked()

    assert counters.handled == [("k", amount) for amount in range(1, 41)]
    assert registry.statistics().started == len(counters.made)


async def test_an_actor_still_cleaning_up_after_retiring_is_replaced_at_once(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    flushed: list[int] = []

    class FlushesOnRetirement(Counter):
        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            await super().run(task_status=task_status)
            await trio.sleep(5)  # e.g. writing its state out; its mailbox is already closed
            flushed.append(self.total)

    counters = Counters()
    registry: Registry[str, Message] = Registry(
        "counters",
        lambda key, inbox: FlushesOnRetirement(key, inbox, counters.handled),
        capacity=4,
        idle_timeout=IDLE,
    )
    await start(registry)
    old = registry.get("k")
    registry.tell_nowait("k", Add(1))
    await trio.sleep(IDLE + 1)
    assert old.closed
    assert flushed == []

    registry.tell_nowait("k", Add(2))
    assert registry.get("k") is not old
    assert await total(registry, "k") == ("k", 2)
    await trio.sleep(5)
    assert flushed == [1]
    assert registry.statistics().live == 1


async def test_a_stale_address_of_a_retired_actor_refuses_loudly(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    counters = Counters()
    registry = registry_of(counters)
    await start(registry)

    stale = registry.get("k")
    await trio.sleep(IDLE + 1)
    with pytest.raises(ActorStopped):
        await stale.tell(Add(1))
    assert counters.handled == []


async def test_a_crashing_keyed_actor_is_restarted_on_the_same_inbox(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    counters = Counters()
    registry = registry_of(counters)
    await start(registry)

    for message in (Add(1), Crash(), Add(2)):
        await registry.tell("k", message)

    # The restarted actor has lost its state (1) but not the queued message (2).
    assert await total(registry, "k") == ("k", 2)
    assert counters.handled == [("k", 1), ("k", 2)]
    assert len(counters.made) == 2
    assert counters.made[0].inbox is counters.made[1].inbox
    stats = registry.statistics()
    assert (stats.live, stats.started, stats.restarts) == (1, 1, 1)


async def test_a_keyed_actor_given_up_on_is_forgotten_and_the_next_get_starts_afresh(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    counters = Counters()
    given_up: list[SupervisorGaveUp] = []
    registry = registry_of(counters, on_give_up=given_up.append)
    await start(registry)

    old = registry.get("k")
    for _ in range(FAST.max_restarts + 1):
        await registry.tell("k", Crash())
    await trio.sleep(FAST.backoff_max * (FAST.max_restarts + 1))

    assert [error.name for error in given_up] == ["counters['k']"]
    assert old.closed
    assert registry.statistics().live == 0
    assert registry.get("k") is not old
    assert await total(registry, "k") == ("k", 0)
    stats = registry.statistics()
    assert (stats.gave_up, stats.retired, stats.started) == (1, 0, 2)


async def test_without_on_give_up_a_crash_loop_raises_out_of_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = registry_of(Counters())
    ready = trio.Event()

    class Ready:
        def started(self, value: object = None) -> None:
            ready.set()

    async def crash_repeatedly() -> None:
        await ready.wait()
        for _ in range(FAST.max_restarts + 1):
            registry.tell_nowait("k", Crash())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(crash_repeatedly)
        with pytest.raises(SupervisorGaveUp) as raised, trio.fail_after(3600):
            await registry.run(task_status=Ready())
    assert raised.value.name == "counters['k']"


async def test_statistics_reflect_live_started_and_retired(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    counters = Counters()
    registry = registry_of(counters)
    await start(registry)
    assert registry.statistics().live == 0

    for key in ("a", "b", "c"):
        registry.tell_nowait(key, Add(1))
    stats = registry.statistics()
    assert (stats.name, stats.live, stats.started, stats.retired) == ("counters", 3, 3, 0)

    await trio.sleep(IDLE / 2)
    registry.tell_nowait("a", Add(1))  # keeps "a" alive past the others' retirement
    await trio.sleep(IDLE / 2 + 1)
    stats = registry.statistics()
    assert (stats.live, stats.started, stats.retired) == (1, 3, 2)

    await trio.sleep(IDLE)
    registry.tell_nowait("b", Add(1))
    stats = registry.statistics()
    assert (stats.live, stats.started, stats.retired, stats.gave_up) == (1, 4, 3, 0)


async def test_a_registry_not_running_refuses_with_its_own_error() -> None:
    registry = registry_of(Counters())
    with pytest.raises(RegistryStopped, match="not running"):
        registry.get("k")
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(registry.run)
            await registry.tell("k", Add(1))
            scope.cancel()
    # Stopped (as at shutdown): the actor it had is gone, and no new one starts.
    with pytest.raises(RegistryStopped) as raised:
        await registry.tell("k", Add(2))
    assert isinstance(raised.value, ActorStopped)  # callers of actors handle it as a stopped one
    assert raised.value.name == "counters"


async def test_statistics_snapshot_no_actor_however_many_are_live(start: Start) -> None:
    """Metrics read statistics() on every scrape: its cost must not grow with the number of
    live rooms and sessions."""
    registry = registry_of(Counters())
    await start(registry)
    for key in range(500):
        registry.tell_nowait(str(key), Add(1))
    await trio.testing.wait_all_tasks_blocked()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        stats = registry.statistics()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (stats.live, stats.started, stats.restarts) == (500, 500, 0)
    assert peak - before < 2_000  # one small snapshot, not one per actor (~100 KB here)


def test_capacity_and_idle_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        registry_of(Counters(), capacity=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        registry_of(Counters(), idle_timeout=0)
