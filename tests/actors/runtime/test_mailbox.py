from __future__ import annotations

import gc
import math
from dataclasses import dataclass
from functools import partial

import pytest
import trio
import trio.testing

from actors.runtime import (
    RETIRED,
    ActorStopped,
    Address,
    AskTimeout,
    Inbox,
    MailboxFull,
    Reply,
    ReplyAlreadySent,
    open_mailbox,
)
from actors.runtime.reply import Answer


@dataclass(frozen=True)
class Double:
    value: int
    reply: Reply[int]


async def answer_one(inbox: Inbox[Double]) -> None:
    message = await inbox.receive()
    message.reply.send(message.value * 2)


def test_capacity_must_be_positive() -> None:
    for capacity in (0, -1):
        with pytest.raises(ValueError, match="capacity"):
            open_mailbox(capacity, "bad")


async def test_tell_waits_for_room_when_the_mailbox_is_full() -> None:
    address, inbox = open_mailbox[str](1, "box")
    await address.tell("first")
    delivered = trio.Event()

    async def second() -> None:
        await address.tell("second")
        delivered.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert not delivered.is_set()
        assert address.statistics().senders_waiting == 1

        assert await inbox.receive() == "first"
        with trio.fail_after(1):
            await delivered.wait()
    assert await inbox.receive() == "second"


async def test_tell_nowait_raises_mailbox_full_when_full() -> None:
    address, inbox = open_mailbox[str](2, "box")
    address.tell_nowait("a")
    address.tell_nowait("b")
    with pytest.raises(MailboxFull) as raised:
        address.tell_nowait("c")
    assert raised.value.name == "box"
    assert raised.value.capacity == 2
    assert [inbox.receive_nowait(), inbox.receive_nowait()] == ["a", "b"]
    with pytest.raises(trio.WouldBlock):
        inbox.receive_nowait()


async def test_ask_returns_the_answer() -> None:
    address, inbox = open_mailbox[Double](4, "doubler")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_one, inbox)
        answer: int = await address.ask(lambda reply: Double(21, reply), timeout=1)
    assert answer == 42


async def test_ask_times_out_with_ask_timeout(autojump_clock: trio.testing.MockClock) -> None:
    address, _inbox = open_mailbox[Double](4, "silent")
    with pytest.raises(AskTimeout) as raised:
        await address.ask(lambda reply: Double(1, reply), timeout=5)
    assert raised.value.name == "silent"
    assert trio.current_time() == pytest.approx(5)


async def test_each_ask_times_out_at_its_own_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    address, _inbox = open_mailbox[Double](8, "silent")
    timed_out: dict[float, float] = {}

    async def ask(seconds: float) -> None:
        with pytest.raises(AskTimeout):
            await address.ask(lambda reply: Double(1, reply), timeout=seconds)
        timed_out[seconds] = trio.current_time()

    async with trio.open_nursery() as nursery:
        for seconds in (10, 2, 5):  # a later ask with an earlier deadline is not kept waiting
            nursery.start_soon(ask, seconds)
            await trio.testing.wait_all_tasks_blocked()
    assert timed_out == {10: pytest.approx(10), 2: pytest.approx(2), 5: pytest.approx(5)}


class _Steps(trio.abc.Instrument):
    """Counts the steps of the tasks with one name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name == self.name:
            self.count += 1


async def test_answered_asks_do_not_wake_the_deadline_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    address, inbox = open_mailbox[Double](64, "echo")

    async def answer_all() -> None:
        async for message in inbox:
            message.reply.send(message.value * 2)

    steps = _Steps("actors.ask_deadlines")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_all)
        await address.ask(lambda reply: Double(0, reply), timeout=10)  # the task is running
        trio.lowlevel.add_instrument(steps)
        for value in range(1, 21):
            assert await address.ask(partial(Double, value), timeout=10) == 2 * value
            await trio.sleep(0.1)
        await trio.sleep(30)  # past every deadline
        nursery.cancel_scope.cancel()
    trio.lowlevel.remove_instrument(steps)
    assert steps.count <= 2  # not once per ask


def _answers_alive() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, Answer))


async def test_an_answered_ask_leaves_nothing_behind_until_its_timeout() -> None:
    # A node answers ~1,000 asks a second, each with a 10 s timeout: what an answered ask left
    # waiting for its deadline would pile up by the ten thousand.
    address, inbox = open_mailbox[Double](64, "echo")

    async def answer_all() -> None:
        async for message in inbox:
            message.reply.send(message.value * 2)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_all)
        before = _answers_alive()
        for value in range(500):
            assert await address.ask(partial(Double, value), timeout=3600) == 2 * value
        assert _answers_alive() - before < 5
        nursery.cancel_scope.cancel()


async def test_an_ask_that_waited_for_room_times_out_at_its_own_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The ask into the full mailbox starts its wait for an answer after an ask made later
    # than it (to another actor, with the same timeout) has started its own.
    full, full_inbox = open_mailbox[Double | str](1, "full")
    other, _other_inbox = open_mailbox[Double](4, "other")
    full.tell_nowait("filler")
    timed_out: dict[str, float] = {}

    async def ask(name: str, address: Address[Double] | Address[Double | str]) -> None:
        with pytest.raises(AskTimeout):
            await address.ask(lambda reply: Double(1, reply), timeout=3)
        timed_out[name] = trio.current_time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, "waited for room", full)  # at 0, deadline 3
        await trio.sleep(0.5)
        nursery.start_soon(ask, "later", other)  # at 0.5, deadline 3.5
        await trio.sleep(0.5)
        assert await full_inbox.receive() == "filler"  # room at 1
    assert timed_out == {"waited for room": pytest.approx(3), "later": pytest.approx(3.5)}


async def test_an_ask_refuses_a_negative_or_nan_timeout_and_sends_nothing() -> None:
    address, inbox = open_mailbox[Double](4, "strict")
    for timeout in (-1.0, math.nan):
        with pytest.raises(ValueError, match="timeout"):
            await address.ask(lambda reply: Double(1, reply), timeout=timeout)
    assert inbox.statistics().depth == 0


async def test_an_ask_may_wait_without_a_deadline() -> None:
    address, inbox = open_mailbox[Double](4, "patient")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_one, inbox)
        assert await address.ask(lambda reply: Double(4, reply), timeout=math.inf) == 8


async def test_an_answered_ask_is_not_timed_out_afterwards(
    autojump_clock: trio.testing.MockClock,
) -> None:
    address, inbox = open_mailbox[Double](4, "echo")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_one, inbox)
        assert await address.ask(lambda reply: Double(2, reply), timeout=1) == 4
    await trio.sleep(2)  # past its deadline: nothing is raised anywhere
    with pytest.raises(AskTimeout):
        await address.ask(lambda reply: Double(3, reply), timeout=1)
    assert trio.current_time() == pytest.approx(3)


async def test_ask_timeout_includes_waiting_for_room(
    autojump_clock: trio.testing.MockClock,
) -> None:
    address, inbox = open_mailbox[Double | str](1, "busy")
    address.tell_nowait("filler")
    with pytest.raises(AskTimeout):
        await address.ask(lambda reply: Double(1, reply), timeout=3)
    assert trio.current_time() == pytest.approx(3)
    assert inbox.statistics().depth == 1


async def test_ask_on_a_stopped_actor_raises_actor_stopped() -> None:
    address, inbox = open_mailbox[Double | str](4, "gone")
    inbox.close()
    assert address.closed
    with pytest.raises(ActorStopped, match="'gone': mailbox is closed"):
        await address.ask(lambda reply: Double(1, reply), timeout=1)
    with pytest.raises(ActorStopped):
        await address.tell("hello")
    with pytest.raises(ActorStopped):
        address.tell_nowait("hello")


async def test_actor_failing_a_reply_reraises_in_the_asker() -> None:
    address, inbox = open_mailbox[Double](4, "picky")
    error = ValueError("odd numbers only")

    async def refuse() -> None:
        (await inbox.receive()).reply.fail(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(refuse)
        with pytest.raises(ValueError, match="odd numbers only") as raised:
            await address.ask(lambda reply: Double(2, reply), timeout=1)
    assert raised.value is error


async def test_dropping_a_reply_unanswered_raises_actor_stopped_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    address, inbox = open_mailbox[Double](4, "forgetful")

    async def forget() -> None:
        await inbox.receive()  # and drop it on the floor

    async with trio.open_nursery() as nursery:
        nursery.start_soon(forget)
        with pytest.raises(ActorStopped, match="without answering"):
            await address.ask(lambda reply: Double(1, reply), timeout=60)
    assert trio.current_time() == 0


async def test_a_reply_in_a_reference_cycle_is_noticed_by_the_collector(
    autojump_clock: trio.testing.MockClock,
) -> None:
    address, inbox = open_mailbox[Double](4, "cyclic")

    async def drop_in_a_cycle() -> None:
        message = await inbox.receive()
        holder: list[object] = [message]
        holder.append(holder)
        del message, holder
        gc.collect()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drop_in_a_cycle)
        with pytest.raises(ActorStopped):
            await address.ask(lambda reply: Double(1, reply), timeout=60)
    assert trio.current_time() == 0


async def ask_stopped_before_handling(
    address: Address[Double | str], errors: list[BaseException]
) -> None:
    """Ask, expecting the mailbox to close before the actor takes the ask; keep the error."""
    with pytest.raises(ActorStopped, match="before handling") as raised:
        await address.ask(lambda reply: Double(1, reply), timeout=60)
    errors.append(raised.value)


async def test_closing_the_inbox_fails_queued_asks_and_counts_dropped_tells(
    autojump_clock: trio.testing.MockClock,
) -> None:
    address, inbox = open_mailbox[Double | str](4, "closing")
    address.tell_nowait("a tell")
    outcomes: list[BaseException] = []

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask_stopped_before_handling, address, outcomes)
        await trio.testing.wait_all_tasks_blocked()
        assert inbox.statistics().depth == 2
        assert inbox.close() == 2
    assert len(outcomes) == 1
    assert trio.current_time() == 0
    assert inbox.close() == 0  # idempotent


async def test_senders_waiting_for_room_go_in_in_arrival_order() -> None:
    address, inbox = open_mailbox[str](1, "box")
    address.tell_nowait("first")
    async with trio.open_nursery() as nursery:
        for text in ("second", "third"):
            nursery.start_soon(address.tell, text)
            await trio.testing.wait_all_tasks_blocked()
        assert address.statistics().senders_waiting == 2
        received = [await inbox.receive() for _ in range(3)]
    assert received == ["first", "second", "third"]


async def test_a_sender_cancelled_while_waiting_for_room_leaves_nothing_behind() -> None:
    address, inbox = open_mailbox[str](1, "box")
    address.tell_nowait("first")
    with trio.move_on_after(0.01) as scope:
        await address.tell("never")
    assert scope.cancelled_caught
    assert address.statistics().senders_waiting == 0
    assert inbox.receive_nowait() == "first"
    with pytest.raises(trio.WouldBlock):
        inbox.receive_nowait()


async def test_closing_lets_waiting_senders_in_and_fails_their_asks() -> None:
    address, inbox = open_mailbox[Double | str](1, "closing")
    address.tell_nowait("queued")
    told = trio.Event()
    asked: list[BaseException] = []

    async def tell() -> None:
        await address.tell("waiting")
        told.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tell)
        nursery.start_soon(ask_stopped_before_handling, address, asked)
        await trio.testing.wait_all_tasks_blocked()
        assert address.statistics().senders_waiting == 2
        assert inbox.close() == 3
    assert told.is_set()
    assert len(asked) == 1
    with pytest.raises(ActorStopped):
        address.tell_nowait("late")


async def test_an_actor_waiting_for_a_message_hears_its_inbox_close() -> None:
    _address, inbox = open_mailbox[str](1, "box")
    with trio.fail_after(5):  # a receiver left parked would hang the nursery
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await inbox.receive()

            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            inbox.close()


async def test_an_actor_waiting_for_a_batch_wakes_once_enough_messages_are_queued() -> None:
    address, inbox = open_mailbox[int](8, "batching")
    filled = trio.Event()

    async def wait() -> None:
        await inbox.wait_queued(3)
        filled.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        for value in range(3):
            await trio.testing.wait_all_tasks_blocked()
            assert not filled.is_set()
            address.tell_nowait(value)
    assert [inbox.receive_nowait() for _ in range(3)] == [0, 1, 2]  # waiting took none
    with trio.fail_after(5):
        await inbox.wait_queued(0)  # already there: returns at once


async def test_waiting_for_a_batch_ends_with_its_deadline_or_the_inbox_closing() -> None:
    address, inbox = open_mailbox[int](8, "batching")
    with trio.move_on_after(0.01) as scope:
        await inbox.wait_queued(2)
    assert scope.cancelled_caught
    address.tell_nowait(1)  # the cancelled wait left nothing parked: this is just queued
    assert inbox.statistics().depth == 1
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(inbox.wait_queued, 2)
            await trio.testing.wait_all_tasks_blocked()
            inbox.close()


async def test_waiting_for_more_than_the_mailbox_can_hold_is_refused() -> None:
    address, inbox = open_mailbox[int](2, "small")
    with trio.fail_after(5), pytest.raises(ValueError, match="holds at most 2 messages"):
        await inbox.wait_queued(3)
    address.tell_nowait(1)
    address.tell_nowait(2)
    with trio.fail_after(5):
        await inbox.wait_queued(2)  # as many as it holds: fine


async def test_a_second_answer_raises_reply_already_sent() -> None:
    address, inbox = open_mailbox[Double](4, "twice")

    async def answer_twice() -> None:
        message = await inbox.receive()
        message.reply.send(1)
        with pytest.raises(ReplyAlreadySent):
            message.reply.send(2)
        with pytest.raises(ReplyAlreadySent):
            message.reply.fail(ValueError())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_twice)
        assert await address.ask(lambda reply: Double(1, reply), timeout=1) == 1


async def test_answering_after_the_asker_gave_up_neither_blocks_nor_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    address, inbox = open_mailbox[Double](4, "slow")
    with pytest.raises(AskTimeout):
        await address.ask(lambda reply: Double(1, reply), timeout=1)
    message = inbox.receive_nowait()
    message.reply.send(2)
    assert message.reply.done


async def test_statistics_report_depth_capacity_waiting_senders_and_received() -> None:
    address, inbox = open_mailbox[int](2, "counted")
    async with trio.open_nursery() as nursery:
        for value in range(3):
            nursery.start_soon(address.tell, value)
        await trio.testing.wait_all_tasks_blocked()
        stats = address.statistics()
        assert (stats.name, stats.depth, stats.capacity, stats.senders_waiting) == (
            "counted",
            2,
            2,
            1,
        )
        assert (stats.received, stats.closed) == (0, False)
        for _ in range(3):
            await inbox.receive()
    assert inbox.statistics() == address.statistics()
    assert address.statistics().received == 3
    assert address.statistics().depth == 0


async def test_receive_or_idle_returns_messages_then_retires_when_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    address, inbox = open_mailbox[str](4, "idler", idle_timeout=10)

    async def send_later() -> None:
        await trio.sleep(9)
        await address.tell("just in time")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_later)
        with trio.fail_after(100):
            assert await inbox.receive_or_idle() == "just in time"
            assert await inbox.receive_or_idle() is RETIRED
    assert trio.current_time() == pytest.approx(19)
    assert inbox.closed
    with pytest.raises(ActorStopped):
        await address.tell("too late")


async def test_receive_or_idle_without_a_timeout_never_retires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _address, inbox = open_mailbox[str](4, "patient")
    with trio.move_on_after(3600) as scope:
        await inbox.receive_or_idle()
    assert scope.cancelled_caught
    assert not inbox.closed


async def test_async_for_ends_when_the_actor_retires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    address, inbox = open_mailbox[int](4, "looper", idle_timeout=5)
    for value in range(3):
        address.tell_nowait(value)
    with trio.fail_after(100):
        assert [value async for value in inbox] == [0, 1, 2]
    assert trio.current_time() == pytest.approx(5)
    assert [value async for value in inbox] == []


async def race_the_idle_deadline(name: str) -> tuple[list[int], list[int]]:
    """Send one message at the instant the actor's idle deadline fires; (accepted, received)."""
    address, inbox = open_mailbox[int](4, name, idle_timeout=10)
    accepted: list[int] = []
    received: list[int] = []

    async def sender() -> None:
        await trio.sleep(10)
        try:
            address.tell_nowait(1)
        except ActorStopped:
            return
        accepted.append(1)

    async def actor() -> None:
        async for value in inbox:
            received.append(value)

    with trio.fail_after(100):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(actor)
            nursery.start_soon(sender)
    return accepted, received


async def test_a_message_racing_the_idle_deadline_is_received_or_refused_never_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Both tasks wake at the same instant and trio runs them in either order (it reverses its
    # batches at random), so the rounds cover both interleavings.
    for round_ in range(40):
        accepted, received = await race_the_idle_deadline(f"race{round_}")
        assert received == accepted
