from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing
from structlog.typing import EventDict

from actors.runtime import (
    ActorStopped,
    Address,
    ChildState,
    Inbox,
    Reply,
    RestartPolicy,
    Supervisor,
    SupervisorGaveUp,
)

Start = Callable[[Any], Awaitable[Any]]

FAST = RestartPolicy(max_restarts=3, within=60, backoff_initial=0.1, backoff_max=1)


class Boom(Exception):
    pass


@dataclass(frozen=True)
class Note:
    text: str


@dataclass(frozen=True)
class Crash:
    pass


@dataclass(frozen=True)
class Echo:
    text: str
    reply: Reply[str]


Message = Note | Crash | Echo


class Recorder:
    """Handles Note by recording it, Echo by answering it, and crashes on Crash."""

    def __init__(self, inbox: Inbox[Message], seen: trio.MemorySendChannel[str]) -> None:
        self.inbox = inbox
        self.seen = seen

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for message in self.inbox:
            match message:
                case Note(text):
                    self.seen.send_nowait(text)
                case Echo(text, reply):
                    reply.send(text)
                case Crash():
                    raise Boom("asked to crash")


class Incarnations:
    """A factory that counts the actors it made and when; ``make`` gets the 1-based count."""

    def __init__(self, make: Callable[[int], Any]) -> None:
        self.make = make
        self.times: list[float] = []
        self._waiters: dict[int, trio.Event] = {}

    def __call__(self) -> Any:
        self.times.append(trio.current_time())
        if (event := self._waiters.get(len(self.times))) is not None:
            event.set()
        return self.make(len(self.times))

    async def wait_for(self, count: int) -> None:
        if len(self.times) < count:
            await self._waiters.setdefault(count, trio.Event()).wait()

    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in itertools.pairwise(self.times)]


class CrashesUntil:
    """Starts, then crashes, until incarnation `healthy_from`, which runs until cancelled."""

    def __init__(self, number: int, healthy_from: float) -> None:
        self.number = number
        self.healthy_from = healthy_from

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self.number < self.healthy_from:
            raise Boom(f"incarnation {self.number}")
        await trio.sleep_forever()


class Ready:
    """A task_status for calling run() directly: started() sets an event."""

    def __init__(self) -> None:
        self.event = trio.Event()

    def started(self, value: object = None) -> None:
        self.event.set()


class GiveUps:
    """An `on_give_up` handler that keeps what it is handed; `called` is set on the first call."""

    def __init__(self) -> None:
        self.errors: list[SupervisorGaveUp] = []
        self.called = trio.Event()

    def __call__(self, error: SupervisorGaveUp) -> None:
        self.errors.append(error)
        self.called.set()


def named(logs: list[EventDict], event: str) -> list[EventDict]:
    return [entry for entry in logs if entry["event"] == event]


async def test_restarts_a_crashing_actor_and_queued_messages_survive(
    start: Start, logs: list[EventDict], autojump_clock: trio.testing.MockClock
) -> None:
    supervisor = Supervisor("test", policy=FAST)
    await start(supervisor)
    seen_send, seen = trio.open_memory_channel[str](10)
    made: list[Recorder] = []

    def factory(inbox: Inbox[Message]) -> Recorder:
        made.append(Recorder(inbox, seen_send))
        return made[-1]

    address = await supervisor.start("recorder", factory, capacity=10)
    for message in (Note("a"), Crash(), Note("b"), Note("c")):
        address.tell_nowait(message)

    with trio.fail_after(100):
        assert [await seen.receive() for _ in range(3)] == ["a", "b", "c"]
    assert len(made) == 2
    assert made[0].inbox is made[1].inbox
    [crashed] = named(logs, "actor_crashed")
    assert crashed["actor"] == "recorder"
    assert crashed["log_level"] == "warning"
    assert isinstance(crashed["exc_info"], Boom)
    [restarting] = named(logs, "actor_restarting")
    assert restarting["delay"] == pytest.approx(0.1)
    assert supervisor.statistics().children[0].restarts == 1


async def test_backoff_grows_exponentially_up_to_the_maximum(
    start: Start, logs: list[EventDict], autojump_clock: trio.testing.MockClock
) -> None:
    policy = RestartPolicy(
        max_restarts=10, within=1000, backoff_initial=1, backoff_factor=2, backoff_max=5
    )
    supervisor = Supervisor("test", policy=policy)
    await start(supervisor)
    factory = Incarnations(lambda number: CrashesUntil(number, healthy_from=7))

    await supervisor.start_child("flaky", factory)
    with trio.fail_after(100):
        await factory.wait_for(7)

    assert factory.gaps() == pytest.approx([1, 2, 4, 5, 5, 5])
    assert [entry["delay"] for entry in named(logs, "actor_restarting")] == pytest.approx(
        [1, 2, 4, 5, 5, 5]
    )


async def test_backoff_starts_over_once_crashes_leave_the_window(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    policy = RestartPolicy(max_restarts=2, within=10, backoff_initial=1, backoff_factor=4)
    supervisor = Supervisor("test", policy=policy)
    await start(supervisor)

    class CrashesEvery20s:
        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            task_status.started()
            await trio.sleep(20)
            raise Boom

    factory = Incarnations(lambda number: CrashesEvery20s())
    await supervisor.start_child("slow crasher", factory)
    with trio.fail_after(1000):
        await factory.wait_for(6)

    # Never more than one crash in any 10 s, so it is never given up on and never backs off
    # more than the initial second.
    assert factory.gaps() == pytest.approx([21] * 5)
    assert supervisor.statistics().gave_up == 0


async def test_gives_up_after_too_many_crashes_within_the_window_and_raises(
    logs: list[EventDict], autojump_clock: trio.testing.MockClock
) -> None:
    supervisor = Supervisor("test", policy=FAST)
    factory = Incarnations(lambda number: CrashesUntil(number, healthy_from=100))
    ready = Ready()
    other_cancelled = trio.Event()

    class Bystander:
        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                other_cancelled.set()

    async def add_children() -> None:
        await ready.event.wait()
        await supervisor.start_child("bystander", Bystander)
        await supervisor.start_child("crasher", factory)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(add_children)
        with pytest.raises(SupervisorGaveUp) as raised, trio.fail_after(3600):
            await supervisor.run(task_status=ready)

    assert raised.value.name == "crasher"
    assert isinstance(raised.value.last_error, Boom)
    assert raised.value.__cause__ is raised.value.last_error
    assert raised.value.crashes == FAST.max_restarts + 1
    assert len(factory.times) == FAST.max_restarts + 1
    assert other_cancelled.is_set()
    [gave_up] = named(logs, "actor_gave_up")
    assert gave_up["log_level"] == "error"
    assert gave_up["actor"] == "crasher"
    assert supervisor.statistics().gave_up == 1


async def test_on_give_up_is_called_instead_of_raising_and_the_mailbox_closes(
    start: Start, logs: list[EventDict], autojump_clock: trio.testing.MockClock
) -> None:
    supervisor = Supervisor("test", policy=FAST)
    await start(supervisor)
    seen_send, _seen = trio.open_memory_channel[str](10)
    on_give_up = GiveUps()
    address: Address[Message] = await supervisor.start(
        "recorder", lambda inbox: Recorder(inbox, seen_send), capacity=10, on_give_up=on_give_up
    )
    for _ in range(FAST.max_restarts + 1):
        address.tell_nowait(Crash())
    queued_ask_failed = trio.Event()

    async def ask_behind_the_crashes() -> None:
        with pytest.raises(ActorStopped):
            await address.ask(lambda reply: Echo("hi", reply), timeout=60)
        queued_ask_failed.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask_behind_the_crashes)
        with trio.fail_after(100):
            await on_give_up.called.wait()
            await queued_ask_failed.wait()

    [error] = on_give_up.errors
    assert error.name == "recorder"
    [gave_up_log] = named(logs, "actor_gave_up")
    assert gave_up_log["escalate"] is False
    [dropped] = named(logs, "mailbox_dropped")
    assert dropped["dropped"] == 1  # the ask queued behind the crashes
    assert address.closed
    with pytest.raises(ActorStopped):
        address.tell_nowait(Note("after"))
    assert supervisor.statistics().children == ()


async def test_the_supervisors_on_give_up_takes_a_child_without_one_and_the_others_keep_running(
    start: Start, logs: list[EventDict], autojump_clock: trio.testing.MockClock
) -> None:
    on_give_up = GiveUps()
    supervisor = Supervisor("test", policy=FAST, on_give_up=on_give_up)
    await start(supervisor)  # an escalation would fail the test's nursery
    seen_send, seen = trio.open_memory_channel[str](10)
    bystander: Address[Message] = await supervisor.start(
        "bystander", lambda inbox: Recorder(inbox, seen_send), capacity=10
    )
    crasher = Incarnations(lambda number: CrashesUntil(number, healthy_from=100))

    await supervisor.start_child("crasher", crasher)
    with trio.fail_after(100):
        await on_give_up.called.wait()

    [error] = on_give_up.errors
    assert (error.name, error.crashes) == ("crasher", FAST.max_restarts + 1)
    assert isinstance(error.last_error, Boom)
    [gave_up_log] = named(logs, "actor_gave_up")
    assert gave_up_log["escalate"] is False
    assert supervisor.running
    assert await bystander.ask(lambda reply: Echo("still here", reply), timeout=60) == "still here"
    bystander.tell_nowait(Note("and later"))
    assert await seen.receive() == "and later"
    [child] = supervisor.statistics().children
    assert (child.name, child.state) == ("bystander", ChildState.RUNNING)
    assert supervisor.statistics().gave_up == 1


async def test_a_childs_own_on_give_up_comes_before_the_supervisors(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    supervisors, childs = GiveUps(), GiveUps()
    supervisor = Supervisor("test", policy=FAST, on_give_up=supervisors)
    await start(supervisor)
    crasher = Incarnations(lambda number: CrashesUntil(number, healthy_from=100))

    await supervisor.start_child("crasher", crasher, on_give_up=childs)
    with trio.fail_after(100):
        await childs.called.wait()

    assert [error.name for error in childs.errors] == ["crasher"]
    assert supervisors.errors == []
    assert supervisor.running


async def test_cancellation_stops_the_supervisor_with_no_restart_logged(
    logs: list[EventDict],
) -> None:
    supervisor = Supervisor("test", policy=FAST)
    seen_send, _seen = trio.open_memory_channel[str](10)
    factory = Incarnations(lambda number: CrashesUntil(number, healthy_from=1))

    class RaisesWhenCancelled:
        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                raise Boom("cleanup failed")  # a careless actor, on purpose

    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.run)
        address: Address[Message] = await supervisor.start(
            "recorder", lambda inbox: Recorder(inbox, seen_send), capacity=4
        )
        await supervisor.start_child("steady", factory)
        await supervisor.start_child("careless", RaisesWhenCancelled)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()

    assert len(factory.times) == 1
    assert named(logs, "actor_restarting") == []
    assert [entry["actor"] for entry in named(logs, "actor_crashed")] == ["careless"]
    assert address.closed
    assert supervisor.statistics().children == ()
    with pytest.raises(RuntimeError, match="not running"):
        await supervisor.start_child("late", factory)


async def test_an_actor_that_returns_is_finished_not_restarted(
    start: Start, logs: list[EventDict]
) -> None:
    supervisor = Supervisor("test", policy=FAST)
    await start(supervisor)

    class OneShot:
        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            task_status.started()

    factory = Incarnations(lambda number: OneShot())
    await supervisor.start_child("one shot", factory)
    await trio.testing.wait_all_tasks_blocked()

    assert len(factory.times) == 1
    assert [entry["actor"] for entry in named(logs, "actor_finished")] == ["one shot"]
    assert named(logs, "actor_restarting") == []
    assert supervisor.statistics().children == ()


async def test_start_returns_when_the_actor_finishes_without_ever_starting(
    start: Start,
) -> None:
    supervisor = Supervisor("test", policy=FAST)
    await start(supervisor)

    class NothingToDo:
        def __init__(self, inbox: Inbox[Message]) -> None:
            pass

        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            return

    address = await supervisor.start("idle", NothingToDo, capacity=4)
    assert address.closed


async def test_an_ask_whose_handler_crashes_fails_at_once_and_the_next_incarnation_answers(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    supervisor = Supervisor("test", policy=FAST)
    await start(supervisor)

    class CrashOnFirstAsk:
        def __init__(self, inbox: Inbox[Echo]) -> None:
            self.inbox = inbox

        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            task_status.started()
            async for message in self.inbox:
                if message.text == "crash":
                    raise Boom("while holding the reply")
                message.reply.send(message.text.upper())

    address = await supervisor.start("echo", CrashOnFirstAsk, capacity=4)
    with pytest.raises(ActorStopped, match="crashed") as raised:
        await address.ask(lambda reply: Echo("crash", reply), timeout=60)
    assert isinstance(raised.value.__cause__, Boom)
    assert trio.current_time() == 0

    assert await address.ask(lambda reply: Echo("hi", reply), timeout=60) == "HI"


async def test_supervises_an_actor_without_an_inbox(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    supervisor = Supervisor("test", policy=FAST)
    await start(supervisor)
    factory = Incarnations(lambda number: CrashesUntil(number, healthy_from=2))

    await supervisor.start_child("watcher", factory)
    with trio.fail_after(100):
        await factory.wait_for(2)
    await trio.testing.wait_all_tasks_blocked()

    [child] = supervisor.statistics().children
    assert (child.name, child.state, child.restarts, child.mailbox) == (
        "watcher",
        ChildState.RUNNING,
        1,
        None,
    )
    assert child.last_error == repr(Boom("incarnation 1"))


async def test_start_returns_once_the_actor_has_started(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    supervisor = Supervisor("test", policy=FAST)
    await start(supervisor)

    class SlowToStart:
        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            await trio.sleep(5)
            task_status.started()
            await trio.sleep_forever()

    with trio.fail_after(100):
        await supervisor.start_child("slow", SlowToStart)
    assert trio.current_time() == pytest.approx(5)
    assert supervisor.statistics().children[0].state is ChildState.RUNNING


async def test_start_raises_gave_up_when_the_child_never_started(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    supervisor = Supervisor("test", policy=FAST)
    await start(supervisor)

    class NeverStarts:
        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            raise Boom("cannot start")

    with pytest.raises(SupervisorGaveUp) as raised, trio.fail_after(100):
        await supervisor.start("broken", lambda inbox: NeverStarts(), capacity=4)
    assert raised.value.name == "broken"
    # The supervisor itself keeps running: the caller of start() got the error.
    await supervisor.start_child("fine", Incarnations(lambda n: CrashesUntil(n, healthy_from=1)))


async def test_statistics_report_restarts_state_and_mailbox_depth(
    start: Start, autojump_clock: trio.testing.MockClock
) -> None:
    supervisor = Supervisor("stats", policy=FAST)
    await start(supervisor)

    class Stuck:
        def __init__(self, inbox: Inbox[Message]) -> None:
            self.inbox = inbox

        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            task_status.started()
            message = await self.inbox.receive()
            if isinstance(message, Crash):
                raise Boom
            await trio.sleep_forever()

    address = await supervisor.start("stuck", Stuck, capacity=8)
    for message in (Crash(), Note("1"), Note("2"), Note("3")):
        address.tell_nowait(message)
    await trio.sleep(1)

    stats = supervisor.statistics()
    assert stats.name == "stats"
    assert stats.restarts == 1
    [child] = stats.children
    assert (child.name, child.state, child.restarts) == ("stuck", ChildState.RUNNING, 1)
    assert child.mailbox is not None
    assert (child.mailbox.depth, child.mailbox.capacity, child.mailbox.received) == (2, 8, 2)
