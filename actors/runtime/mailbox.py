"""Mailboxes: the bounded channel an actor reads, and the address everyone else sends to.

Theory of operation
-------------------
`open_mailbox` makes one `_Queue`: a bounded FIFO with the senders parked for room and the one
receiver parked for a message, as a trio memory channel would be, at a tenth of its size (a
node runs an actor per connected user, and a channel's state costs ~2.5 KB of each one's
memory). Its sending side is wrapped in an `Address`, the only handle other code ever holds;
its receiving side in an `Inbox`, held by the actor and owned by whoever opened the mailbox
(normally a `Supervisor`).

Each item in the queue is an envelope ``(message, reply or None)``. `Address.ask` puts the
`Reply` it created in the envelope as well as in the message, so the inbox knows which replies
it handed to the actor. When an incarnation of the actor crashes, its supervisor fails the
unanswered ones with `ActorStopped` at once (`Inbox._abandon_in_flight`); without that, the
crash's traceback would keep them alive and their askers would wait for their timeouts.

Only the inbox side closes. `Address` has no ``close()``: every holder shares the one queue, and
"no more messages" is the owner's decision, not a sender's. Once the inbox is closed, `tell`
and `ask` raise `ActorStopped`. Closing takes what was queued (senders parked for room are let
in first), failing every queued ask with `ActorStopped`; queued tells are dropped and counted.

Retirement (`Inbox.receive_or_idle`) closes the inbox only when its buffer is empty and no sender
is waiting for room, checking and closing with no checkpoint in between. Trio is cooperative, so
no sender can slip in between the two: a message is either seen by the check (and received), or
its sender finds the mailbox closed and gets `ActorStopped`. Nothing accepted is ever dropped
by retiring.
"""

from __future__ import annotations

import enum
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Generic, Literal, Self, TypeAlias, TypeVar, final

import outcome
import trio

from .errors import ActorStopped, AskTimeout, MailboxFull
from .reply import Answer, Reply

M = TypeVar("M")
R = TypeVar("R")

_Envelope: TypeAlias = tuple[M, Reply[Any] | None]


class Retired(enum.Enum):
    """The type of `RETIRED`, so that ``msg is RETIRED`` narrows in a type checker."""

    RETIRED = "retired"


RETIRED: Final = Retired.RETIRED
"""Returned by `Inbox.receive_or_idle` when the actor has retired: it should return from run()."""


@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    """A snapshot of one mailbox.

    Attributes:
      name: the mailbox's (and its actor's) name.
      depth: messages waiting in the buffer.
      capacity: the buffer's size.
      senders_waiting: tasks blocked in `tell`/`ask` because the buffer is full.
      received: messages the actor has taken out, over the mailbox's life.
      closed: True once the inbox is closed; sends then raise `ActorStopped`.
    """

    name: str
    depth: int
    capacity: int
    senders_waiting: int
    received: int
    closed: bool


class _Queue(Generic[M]):
    """One mailbox, shared by its two ends: the envelopes waiting, the senders parked for room
    (in arrival order), the receiver parked for an envelope, and the count received.

    Follows trio's channel conventions: a blocking operation always checkpoints, and an
    operation that gives up on cancellation has done nothing.
    """

    __slots__ = (
        "_buffer",
        "_filling",
        "_receiver",
        "_senders",
        "capacity",
        "closed",
        "name",
        "received",
    )

    def __init__(self, capacity: int, name: str) -> None:
        self.name = name
        self.capacity = capacity
        self.received = 0
        self.closed = False
        # Made when needed and dropped once empty: most actors sit idle with nothing queued.
        self._buffer: deque[_Envelope[M]] | None = None
        self._senders: dict[trio.lowlevel.Task, _Envelope[M]] = {}
        self._receiver: trio.lowlevel.Task | None = None
        # The receiver parked until the buffer holds this many (`wait_depth`).
        self._filling: tuple[trio.lowlevel.Task, int] | None = None

    def put_nowait(self, envelope: _Envelope[M]) -> None:
        if self.closed:
            raise ActorStopped(self.name)
        if self._receiver is not None:  # it waits, so nothing is queued: hand it over
            receiver, self._receiver = self._receiver, None
            trio.lowlevel.reschedule(receiver, outcome.Value(envelope))
            return
        if self._buffer is None:
            self._buffer = deque()
        elif len(self._buffer) >= self.capacity:
            raise MailboxFull(self.name, self.capacity)
        self._buffer.append(envelope)
        if self._filling is not None and len(self._buffer) >= self._filling[1]:
            self._wake_filling()

    async def put(self, envelope: _Envelope[M]) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.put_nowait(envelope)
        except MailboxFull:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        task = trio.lowlevel.current_task()
        self._senders[task] = envelope

        def abort(_: object) -> trio.lowlevel.Abort:
            del self._senders[task]
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def get_nowait(self) -> _Envelope[M]:
        if self.closed:
            raise trio.ClosedResourceError("this mailbox is closed")
        buffer = self._buffer
        if not buffer:  # senders only wait on a full buffer, so none waits on an empty one
            raise trio.WouldBlock
        envelope = buffer.popleft()
        if self._senders:  # the first one waiting takes the freed place
            sender = next(iter(self._senders))
            buffer.append(self._senders.pop(sender))
            trio.lowlevel.reschedule(sender)
        elif not buffer:
            self._buffer = None
        return envelope

    async def get(self) -> _Envelope[M]:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            envelope = self.get_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return envelope
        self._check_no_receiver()
        self._receiver = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._receiver = None
            return trio.lowlevel.Abort.SUCCEEDED

        delivered: _Envelope[M] = await trio.lowlevel.wait_task_rescheduled(abort)
        return delivered

    async def wait_depth(self, depth: int) -> None:
        """Return once `depth` envelopes are queued, or the mailbox closes.

        Raises:
          ValueError: `depth` exceeds the capacity, so the wait could never end.
        """
        if depth > self.capacity:
            raise ValueError(
                f"mailbox {self.name!r} holds at most {self.capacity} messages: "
                f"waiting for {depth} queued would never end"
            )
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.depth >= depth or self.closed:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        self._check_no_receiver()
        self._filling = (trio.lowlevel.current_task(), depth)

        def abort(_: object) -> trio.lowlevel.Abort:
            self._filling = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _check_no_receiver(self) -> None:
        if self._receiver is not None or self._filling is not None:
            raise trio.BusyResourceError("another task is already receiving from this mailbox")

    def _wake_filling(self) -> None:
        assert self._filling is not None  # noqa: S101 - narrows the type for mypy; the caller checked
        filling, self._filling = self._filling[0], None
        trio.lowlevel.reschedule(filling)

    @property
    def depth(self) -> int:
        return len(self._buffer) if self._buffer else 0

    @property
    def empty(self) -> bool:
        """Nothing queued and no sender waiting for room."""
        return not self._buffer and not self._senders

    @property
    def receiver_waiting(self) -> bool:
        """The receiver is parked (so nothing is queued)."""
        return self._receiver is not None

    def close(self) -> list[_Envelope[M]]:
        """Refuse every later send; return what was queued, the parked senders' envelopes last
        (they are let in, as if there had been room). A parked receiver gets
        `trio.ClosedResourceError`."""
        self.closed = True
        left = list(self._buffer or ())
        self._buffer = None
        for sender, envelope in self._senders.items():
            left.append(envelope)
            trio.lowlevel.reschedule(sender)
        self._senders.clear()
        if self._receiver is not None:
            receiver, self._receiver = self._receiver, None
            error = trio.ClosedResourceError("this mailbox is closed")
            trio.lowlevel.reschedule(receiver, outcome.Error(error))
        if self._filling is not None:
            self._wake_filling()
        return left

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(
            name=self.name,
            depth=self.depth,
            capacity=self.capacity,
            senders_waiting=len(self._senders),
            received=self.received,
            closed=self.closed,
        )


def _ask_envelope(build: Callable[[Reply[R]], M], answer: Answer[R]) -> _Envelope[M]:
    reply = Reply(answer)
    return build(reply), reply


class Address(Generic[M]):
    """The handle through which everyone but the actor reaches it.

    Full policy: `tell` and `ask` wait for room (back-pressure, for work that must not be
    lost); `tell_nowait` refuses with `MailboxFull`. A sender that must never wait on one slow
    actor (a room fanning out to client connections) uses `tell_nowait` and decides what
    `MailboxFull` means: drop, resync or disconnect.

    An address never closes: the actor's inbox does, and from then on every send raises
    `ActorStopped`.
    """

    __slots__ = ("_queue",)

    def __init__(self, queue: _Queue[M]) -> None:
        self._queue = queue

    @property
    def name(self) -> str:
        return self._queue.name

    @property
    def closed(self) -> bool:
        """True once the actor's inbox is closed; every send then raises `ActorStopped`."""
        return self._queue.closed

    async def tell(self, message: M) -> None:
        """Queue `message`, waiting for room while the mailbox is full.

        Raises:
          ActorStopped: the inbox is (or, while waiting, becomes) closed.
        """
        await self._queue.put((message, None))

    def tell_nowait(self, message: M) -> None:
        """Queue `message` if there is room, without blocking.

        Raises:
          MailboxFull: the buffer is full; the message was not queued.
          ActorStopped: the inbox is closed.
        """
        self._queue.put_nowait((message, None))

    # ASYNC109: the timeout is the contract of ask, not an inherited deadline: it turns a
    # missing answer into AskTimeout (504 at the edge) instead of a Cancelled.
    async def ask(self, build: Callable[[Reply[R]], M], *, timeout: float) -> R:  # noqa: ASYNC109
        """Send ``build(reply)`` and wait for the actor to settle `reply`; return its value.

        `timeout` covers both waiting for room in the mailbox and waiting for the answer.

        Raises:
          ValueError: `timeout` is negative or NaN.
          AskTimeout: no answer within `timeout` seconds.
          ActorStopped: the inbox is closed, or the actor stopped, crashed or dropped the reply
              without answering (promptly, not at the timeout).
          Exception: whatever the actor passed to `Reply.fail`.
        """
        if not timeout >= 0:  # also NaN, which would corrupt the run's deadline heap
            raise ValueError(f"timeout must be >= 0 seconds, not {timeout!r}")
        await trio.lowlevel.checkpoint_if_cancelled()
        deadline = trio.current_time() + timeout
        answer: Answer[R] = Answer(self.name, timeout)
        # No local keeps the Reply alive while we wait: an actor that drops it must be its
        # last owner, so that collecting it wakes us (see reply.py).
        if not await self._put_by(deadline, _ask_envelope(build, answer)):
            raise AskTimeout(self.name, timeout)
        return await answer.wait(deadline)

    async def _put_by(self, deadline: float, envelope: _Envelope[M]) -> bool:
        """Queue `envelope`, waiting for room until `deadline`; False if there was none."""
        try:
            self._queue.put_nowait(envelope)
        except MailboxFull:
            with trio.move_on_at(deadline):
                await self._queue.put(envelope)
                return True
            return False
        return True

    def statistics(self) -> MailboxStatistics:
        return self._queue.statistics()

    def __repr__(self) -> str:
        return f"<Address {self.name!r}>"


class Inbox(Generic[M]):
    """The receive side of a mailbox: what the actor reads its messages from.

    ``async for message in inbox`` receives until the actor retires (only when the mailbox has
    an idle timeout) or the inbox is closed.

    Raises:
      trio.ClosedResourceError: from `receive` and `receive_nowait` once the inbox is closed,
          e.g. by receiving again after `receive_or_idle` returned `RETIRED`.
    """

    __slots__ = ("_idle_timeout", "_in_flight", "_queue")

    def __init__(self, queue: _Queue[M], idle_timeout: float | None) -> None:
        self._queue = queue
        self._idle_timeout = idle_timeout
        # Weak, so that a reply the actor drops is still collected and wakes its asker. Made on
        # the first ask: most actors are only told things, and a WeakSet costs ~700 bytes, which
        # thousands of per-user actors would pay for nothing.
        self._in_flight: weakref.WeakSet[Reply[Any]] | None = None

    @property
    def name(self) -> str:
        return self._queue.name

    @property
    def idle_timeout(self) -> float | None:
        return self._idle_timeout

    @property
    def closed(self) -> bool:
        return self._queue.closed

    @property
    def waiting(self) -> bool:
        """The actor is parked for its next message: it has handled everything sent to it
        (a message handed to it but not yet handled, or still queued, makes this False)."""
        return self._queue.receiver_waiting

    @property
    def queued(self) -> int:
        """Messages waiting in the buffer (senders parked for room not counted)."""
        return self._queue.depth

    async def receive(self) -> M:
        """Wait for the next message."""
        return self._open(await self._queue.get())

    async def wait_queued(self, count: int) -> None:
        """Wait until `count` messages are queued (at once if they are) or the inbox closes,
        without taking any: how an actor lets a batch fill up. Put a deadline around it.

        Raises:
          ValueError: `count` exceeds the mailbox's capacity (it could never be queued).
        """
        await self._queue.wait_depth(count)

    def receive_nowait(self) -> M:
        """Take the next message if one is waiting.

        Raises:
          trio.WouldBlock: the mailbox is empty.
        """
        return self._open(self._queue.get_nowait())

    async def receive_or_idle(
        self, idle_timeout: float | None = None
    ) -> M | Literal[Retired.RETIRED]:
        """Wait for the next message, or retire after `idle_timeout` seconds without one.

        `idle_timeout` defaults to the mailbox's; with neither, this is `receive`. Retiring
        closes the inbox (later sends raise `ActorStopped`) and returns `RETIRED`; the actor
        should then return from run(). It retires only when the buffer is empty and no sender
        is waiting for room, so no message that was accepted is lost.
        """
        timeout = self._idle_timeout if idle_timeout is None else idle_timeout
        if timeout is None:
            return await self.receive()
        while True:
            with trio.move_on_after(timeout):
                return await self.receive()
            # No checkpoint from here to close(): this check and the closing are one step.
            if self._queue.empty:
                self.close()
                return RETIRED

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> M:
        if self.closed:
            raise StopAsyncIteration
        message = await self.receive_or_idle()
        if message is RETIRED:
            raise StopAsyncIteration
        return message

    def statistics(self) -> MailboxStatistics:
        return self._queue.statistics()

    def close(self) -> int:
        """Close the mailbox; return how many queued messages were dropped. Idempotent.

        Queued asks fail with `ActorStopped`; queued tells are dropped. Senders blocked for
        room are let in and treated like queued ones. Later sends raise `ActorStopped`.
        Replies the actor already received are left alone: it may still answer them.
        """
        if self.closed:
            return 0
        left = self._queue.close()
        for _message, reply in left:
            if reply is not None:
                reply._abandon(ActorStopped(self.name, "stopped before handling the request"))
        return len(left)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self, envelope: _Envelope[M]) -> M:
        message, reply = envelope
        self._queue.received += 1
        if reply is not None:
            if self._in_flight is None:
                self._in_flight = weakref.WeakSet()
            self._in_flight.add(reply)
        return message

    def _abandon_in_flight(self, cause: BaseException) -> None:
        """Fail every reply handed to the actor and not yet answered; for its supervisor.

        Called when an incarnation crashes: it took those requests with it. The next
        incarnation starts from the queue, not from what the last one was holding.
        """
        for reply in list(self._in_flight or ()):
            if not reply.done:
                stopped = ActorStopped(self.name, "crashed while handling the request")
                stopped.__cause__ = cause
                reply._abandon(stopped)
        self._in_flight = None

    def __repr__(self) -> str:
        return f"<Inbox {self.name!r}>"


@final
class open_mailbox(tuple[Address[M], Inbox[M]]):
    """Open a bounded mailbox: ``address, inbox = open_mailbox[Msg](capacity, name)``.

    Returns the `Address` to hand out and the `Inbox` its actor reads. Shaped like
    `trio.open_memory_channel` (a class only so that ``open_mailbox[Msg]`` types both ends);
    it is called like a function.

    The caller owns the inbox and must close it (``with inbox:``), unless it hands it to a
    `Supervisor`, which then closes it when the actor is done. `idle_timeout` is the default
    for `Inbox.receive_or_idle`, and makes ``async for`` over the inbox end once the actor has
    been idle that long; `Registry` sets it.

    Raises:
      ValueError: when `capacity` is not a positive integer (every mailbox is bounded), or
          `idle_timeout` is not positive.
    """

    def __new__(  # type: ignore[misc]  # returns a plain tuple, as trio's does
        cls, capacity: int, name: str, *, idle_timeout: float | None = None
    ) -> tuple[Address[M], Inbox[M]]:
        if not isinstance(capacity, int) or capacity <= 0:
            raise ValueError(f"mailbox capacity must be a positive int, not {capacity!r}")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0, not {idle_timeout!r}")
        queue: _Queue[M] = _Queue(capacity, name)
        return Address(queue), Inbox(queue, idle_timeout)

    def __init__(self, capacity: int, name: str, *, idle_timeout: float | None = None) -> None:
        pass  # never called: __new__ returns a tuple; here for type checkers' sake
