"""The supervisor: runs child actors in its nursery and restarts the ones that crash.

Theory of operation
-------------------
Each child is one task in the supervisor's nursery running `Supervisor._supervise`, a loop over
*incarnations*: call the factory, await ``actor.run()``, and decide from how it ended.

- It returns: the child has finished. It is not restarted.
- It raises an `Exception`: a crash. Replies the incarnation held are failed with
  `ActorStopped`; the crash is counted by the child's `CrashHistory`, and the loop sleeps the
  backoff and starts the next incarnation on the *same* inbox, so queued messages survive.
  One crash too many in the window gives up: by default `SupervisorGaveUp` is raised out of
  `Supervisor.run` (the whole supervisor stops; the node's nursery sees it), or the child's
  ``on_give_up`` callback (else the supervisor's own) is called instead.
- It is cancelled: cancellation propagates untouched. It is never a crash and never logged as
  one.

Whatever the ending, the child's inbox (which the supervisor owns) is closed when its loop ends,
so senders get `ActorStopped` instead of waiting on a mailbox nobody reads.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog
import trio
from structlog.typing import FilteringBoundLogger

from .errors import SupervisorGaveUp
from .mailbox import Address, Inbox, MailboxStatistics, open_mailbox
from .restart import CrashHistory, RestartPolicy

M = TypeVar("M")

GiveUpHandler = Callable[[SupervisorGaveUp], None]

DEFAULT_POLICY = RestartPolicy()


class Actor(Protocol):
    """Anything a supervisor can run.

    run() owns the actor's state for as long as it runs. It calls ``task_status.started()`` once
    it can do its job (the value is ignored). Returning means the actor has finished for good;
    raising an `Exception` is a crash.
    """

    async def run(self, *, task_status: trio.TaskStatus[Any] = ...) -> None: ...


class ChildState(enum.Enum):
    """Where a supervised child is in its life; `_TRANSITIONS` says which moves are legal."""

    STARTING = "starting"  # an incarnation is running but has not called started() yet
    RUNNING = "running"
    BACKING_OFF = "backing_off"  # crashed; waiting to start the next incarnation
    FINISHED = "finished"  # run() returned (an idle keyed actor retiring, too)
    GAVE_UP = "gave_up"
    STOPPED = "stopped"  # cancelled


_TRANSITIONS: Mapping[ChildState, frozenset[ChildState]] = {
    ChildState.STARTING: frozenset(
        {ChildState.RUNNING, ChildState.BACKING_OFF, ChildState.FINISHED, ChildState.GAVE_UP}
        | {ChildState.STOPPED}
    ),
    ChildState.RUNNING: frozenset(
        {ChildState.BACKING_OFF, ChildState.FINISHED, ChildState.GAVE_UP, ChildState.STOPPED}
    ),
    ChildState.BACKING_OFF: frozenset({ChildState.STARTING, ChildState.STOPPED}),
    ChildState.FINISHED: frozenset(),
    ChildState.GAVE_UP: frozenset(),
    ChildState.STOPPED: frozenset(),
}

TERMINAL_STATES = frozenset(state for state, moves in _TRANSITIONS.items() if not moves)


@dataclass(frozen=True, slots=True)
class ChildStatistics:
    """A snapshot of one supervised child.

    Attributes:
      restarts: incarnations started after a crash, over the child's life.
      last_error: repr of the last crash, or None.
      mailbox: its mailbox's statistics, or None for a child without an inbox.
    """

    name: str
    state: ChildState
    restarts: int
    last_error: str | None
    mailbox: MailboxStatistics | None


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """A snapshot of a supervisor.

    Attributes:
      children: the children it currently supervises, in the order they were started.
      restarts: restarts over the supervisor's life, all children together.
      gave_up: children it has given up on, over its life.
    """

    name: str
    children: tuple[ChildStatistics, ...]
    restarts: int
    gave_up: int


class _Child:
    """The supervisor's record of one child, shared by all its incarnations."""

    __slots__ = (
        "context",
        "crashes",
        "factory",
        "gave_up",
        "inbox",
        "last_error",
        "name",
        "on_exit",
        "on_give_up",
        "restarts",
        "state",
        "waiter",
    )

    def __init__(
        self,
        name: str,
        factory: Callable[[], Actor],
        *,
        inbox: Inbox[Any] | None,
        policy: RestartPolicy,
        on_give_up: GiveUpHandler | None,
        on_exit: Callable[[ChildState], None] | None,
        context: Mapping[str, object],
    ) -> None:
        self.name = name
        self.factory = factory
        self.inbox = inbox
        self.on_give_up = on_give_up
        self.on_exit = on_exit
        self.context = context
        self.crashes = CrashHistory(policy)
        self.state = ChildState.STARTING
        self.restarts = 0
        self.last_error: BaseException | None = None
        self.gave_up: SupervisorGaveUp | None = None
        # The task_status of a Supervisor.start()/start_child() still waiting for the child.
        self.waiter: trio.TaskStatus[None] | None = None

    def move(self, new: ChildState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"child {self.name!r}: illegal move {self.state} -> {new}")
        self.state = new

    def announce(self) -> None:
        """Release the start() waiting for this child, if any; only the first call does."""
        waiter, self.waiter = self.waiter, None
        if waiter is not None:
            waiter.started()

    def log(self) -> FilteringBoundLogger:
        """A logger bound to this child. Made when there is something to say, not kept: a
        bound logger is ~600 bytes, and a node runs thousands of per-user actors."""
        return structlog.get_logger().bind(actor=self.name, **self.context)

    def statistics(self) -> ChildStatistics:
        return ChildStatistics(
            name=self.name,
            state=self.state,
            restarts=self.restarts,
            last_error=None if self.last_error is None else repr(self.last_error),
            mailbox=None if self.inbox is None else self.inbox.statistics(),
        )


class _IncarnationStatus:
    """The task_status handed to one incarnation's run()."""

    __slots__ = ("_called", "_child")

    def __init__(self, child: _Child) -> None:
        self._child = child
        self._called = False

    def started(self, value: object = None) -> None:
        if self._called:
            raise RuntimeError("called 'started' twice on the same task status")
        self._called = True
        self._child.move(ChildState.RUNNING)
        self._child.announce()


class Supervisor:
    """Runs child actors and restarts the ones that crash, following a `RestartPolicy`.

    Start it in a nursery with ``await nursery.start(supervisor.run)``; once that returns, it
    takes children. It runs until cancelled, which stops every child (cancellation is never
    counted or logged as a crash, and nothing is restarted), or until it gives up on a child
    that has no ``on_give_up``: it then cancels the other children and raises
    `SupervisorGaveUp`. A supervisor's own `on_give_up` handles every child started without
    one: its owner then decides how to stop (the node drains its HTTP server first, with the
    other children still running). Child names are for logs and statistics; they need not be
    unique.

    For children with a mailbox the supervisor owns the inbox: it survives restarts, and is
    closed when the child finishes, is given up on, or is cancelled.

    Logs (structlog, bound with ``actor=<child name>``): ``actor_crashed`` (warning, with the
    traceback), ``actor_restarting`` (info, with the delay), ``actor_gave_up`` (error),
    ``actor_finished`` (info), ``mailbox_dropped`` (warning, queued messages lost on close).
    """

    def __init__(
        self,
        name: str = "supervisor",
        *,
        policy: RestartPolicy = DEFAULT_POLICY,
        on_give_up: GiveUpHandler | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.on_give_up = on_give_up
        self._nursery: trio.Nursery | None = None
        self._ran = False
        self._children: dict[_Child, None] = {}  # a dict keeps start order
        self._failure: SupervisorGaveUp | None = None
        self._restarts = 0
        self._gave_up = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Supervise children until cancelled; call ``task_status.started()`` once ready.

        Raises:
          SupervisorGaveUp: a child crashed too often, and neither it nor the supervisor
              has an ``on_give_up``; every other child has been cancelled by then.
          RuntimeError: the supervisor has already run (it runs once).
        """
        if self._ran:
            raise RuntimeError(f"supervisor {self.name!r} has already run")
        self._ran = True
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
        # The nursery only absorbs its own cancellation, which only _escalate() asks for.
        if self._failure is None:
            raise AssertionError("supervisor nursery exited without a failure")
        raise self._failure

    async def start(
        self,
        name: str,
        factory: Callable[[Inbox[M]], Actor],
        *,
        capacity: int,
        on_give_up: GiveUpHandler | None = None,
    ) -> Address[M]:
        """Open a mailbox of `capacity`, start ``factory(inbox)`` on it, return its address.

        Every incarnation gets the same inbox. Returns once the first incarnation has called
        ``task_status.started()`` (or has finished).

        Raises:
          SupervisorGaveUp: the child crashed too often before it ever started.
          RuntimeError: the supervisor is not running.
        """
        address, inbox = open_mailbox[M](capacity, name)
        try:
            await self.start_child(
                name, functools.partial(factory, inbox), inbox=inbox, on_give_up=on_give_up
            )
        except BaseException:
            inbox.close()
            raise
        return address

    async def start_child(
        self,
        name: str,
        factory: Callable[[], Actor],
        *,
        inbox: Inbox[Any] | None = None,
        on_give_up: GiveUpHandler | None = None,
    ) -> None:
        """Start supervising ``factory()``: for an actor with no mailbox, or one you opened.

        Passing `inbox` hands it to the supervisor, which closes it when the child is done.
        Returns as `start` does.

        Raises:
          SupervisorGaveUp: the child crashed too often before it ever started.
          RuntimeError: the supervisor is not running.
        """
        child = self._adopt(name, factory, inbox, on_give_up, None, None)
        await self._running_nursery().start(self._supervise, child, name=f"supervise {name}")

    def start_soon(
        self,
        name: str,
        factory: Callable[[], Actor],
        *,
        inbox: Inbox[Any] | None = None,
        on_give_up: GiveUpHandler | None = None,
        on_exit: Callable[[ChildState], None] | None = None,
        log_context: Mapping[str, object] | None = None,
    ) -> None:
        """Like `start_child`, but synchronous: the child starts at the next scheduling point.

        `on_exit` is called with the child's final state (FINISHED, GAVE_UP or STOPPED) after
        its inbox has been closed; `log_context` adds fields to every log line about it. A
        child that gives up here before it ever started is treated like any other give-up.

        Raises:
          RuntimeError: the supervisor is not running.
        """
        nursery = self._running_nursery()
        child = self._adopt(name, factory, inbox, on_give_up, on_exit, log_context)
        nursery.start_soon(self._supervise, child, name=f"supervise {name}")

    @property
    def running(self) -> bool:
        """It takes children: `run` has started and has not ended."""
        return self._nursery is not None

    @property
    def restarts(self) -> int:
        """Restarts over the supervisor's life, all children together; unlike `statistics`,
        this snapshots no child."""
        return self._restarts

    def statistics(self) -> SupervisorStatistics:
        return SupervisorStatistics(
            name=self.name,
            children=tuple(child.statistics() for child in self._children),
            restarts=self._restarts,
            gave_up=self._gave_up,
        )

    def _running_nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError(f"supervisor {self.name!r} is not running")
        return self._nursery

    def _adopt(
        self,
        name: str,
        factory: Callable[[], Actor],
        inbox: Inbox[Any] | None,
        on_give_up: GiveUpHandler | None,
        on_exit: Callable[[ChildState], None] | None,
        log_context: Mapping[str, object] | None,
    ) -> _Child:
        self._running_nursery()
        return _Child(
            name,
            factory,
            inbox=inbox,
            policy=self.policy,
            on_give_up=on_give_up or self.on_give_up,
            on_exit=on_exit,
            context=log_context or {},
        )

    async def _supervise(
        self, child: _Child, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if task_status is not trio.TASK_STATUS_IGNORED:
            child.waiter = task_status
        self._children[child] = None
        try:
            await self._incarnate(child)
        finally:
            self._release(child)
        if child.state is ChildState.FINISHED:
            child.announce()  # a start() still waiting gets the (closed) address, not an error
        elif child.gave_up is not None:
            if child.waiter is not None:
                raise child.gave_up  # nursery.start() hands it to the caller of start()
            if child.on_give_up is not None:
                child.on_give_up(child.gave_up)
            else:
                self._escalate(child.gave_up)

    async def _incarnate(self, child: _Child) -> None:
        """Run incarnations until one finishes or the child is given up on."""
        while True:
            try:
                actor = child.factory()
                await actor.run(task_status=_IncarnationStatus(child))
            except Exception as exc:
                crash = exc
            else:
                child.move(ChildState.FINISHED)
                child.log().info("actor_finished", restarts=child.restarts)
                return
            child.last_error = crash
            if child.inbox is not None:
                child.inbox._abandon_in_flight(crash)
            child.log().warning("actor_crashed", error=repr(crash), exc_info=crash)
            if trio.current_effective_deadline() == -math.inf:
                # It crashed while we are being cancelled: that is shutdown, not a reason to
                # restart. This checkpoint raises the Cancelled.
                await trio.lowlevel.checkpoint()
            delay = child.crashes.record(trio.current_time())
            if delay is None:
                self._give_up(child, crash)
                return
            child.move(ChildState.BACKING_OFF)
            child.log().info("actor_restarting", delay=delay, restarts=child.restarts + 1)
            await trio.sleep(delay)
            child.restarts += 1
            self._restarts += 1
            child.move(ChildState.STARTING)

    def _give_up(self, child: _Child, crash: Exception) -> None:
        child.move(ChildState.GAVE_UP)
        self._gave_up += 1
        crashes, within = len(child.crashes), self.policy.within
        child.gave_up = SupervisorGaveUp(child.name, crash, crashes=crashes, within=within)
        child.log().error(
            "actor_gave_up",
            crashes=crashes,
            within=within,
            error=repr(crash),
            escalate=child.on_give_up is None,
        )

    def _release(self, child: _Child) -> None:
        """The child's loop is over, however it ended: close its inbox and forget it."""
        if child.state not in TERMINAL_STATES:
            child.move(ChildState.STOPPED)
        if child.inbox is not None:
            dropped = child.inbox.close()
            if dropped:
                child.log().warning("mailbox_dropped", dropped=dropped, state=child.state.value)
        del self._children[child]
        if child.on_exit is not None:
            child.on_exit(child.state)

    def _escalate(self, gave_up: SupervisorGaveUp) -> None:
        if self._failure is None:
            self._failure = gave_up
        self._running_nursery().cancel_scope.cancel()
