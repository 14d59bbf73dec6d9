"""Keyed actors started on demand (one per course, one per user), retired when idle.

Theory of operation
-------------------
`Registry.get` looks the key up and, when there is no live actor for it, opens a mailbox with
the registry's idle timeout and hands it to the registry's own `Supervisor` with `start_soon`,
all synchronously. Crashes are therefore restarted (and given up on) exactly as under any
supervisor, on the same inbox.

An actor retires by reading its inbox with ``async for`` (or `Inbox.receive_or_idle`): after
`idle_timeout` seconds without a message, and only with an empty buffer and no sender waiting,
the inbox closes itself and the actor returns. `get` treats a key whose mailbox is closed as
absent, so from that instant on it starts a fresh actor; the old entry is forgotten when the old
task's supervision ends (``on_exit``), and only if it has not already been replaced.

So a message is never lost to retirement: `get` and the send that follows it run with no
checkpoint in between (`Registry.tell` / `Registry.ask` do exactly that), and the inbox
cannot close while a message is queued or a sender is waiting. Code that keeps an `Address`
from `get` across its own checkpoints may find the actor retired and get `ActorStopped`; call
`get` again (it is a dict lookup) rather than keeping addresses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from .errors import RegistryStopped
from .mailbox import Address, Inbox, open_mailbox
from .reply import Reply
from .restart import RestartPolicy
from .supervisor import DEFAULT_POLICY, Actor, ChildState, GiveUpHandler, Supervisor

K = TypeVar("K", bound=Hashable)
M = TypeVar("M")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RegistryStatistics:
    """A snapshot of a registry.

    Attributes:
      live: keys that currently have an actor.
      started: actors started by `get`, over the registry's life (restarts not included).
      retired: actors that finished (retired when idle), over its life.
      gave_up: actors given up on after crashing too often, over its life.
      restarts: restarts after crashes, over its life.
    """

    name: str
    live: int
    started: int
    retired: int
    gave_up: int
    restarts: int


@dataclass(frozen=True, slots=True)
class _Entry(Generic[M]):
    address: Address[M]
    inbox: Inbox[M]


class Registry(Generic[K, M]):
    """Keyed actors, started on first use by ``factory(key, inbox)``, retired when idle.

    Start it with ``await nursery.start(registry.run)``. Every mailbox has room for
    `capacity` messages; senders wait when it is full. Crashes are handled by `policy` as in
    a `Supervisor`; once an actor is given up on, `on_give_up` is called and the key is
    forgotten (the next `get` starts a fresh actor), or, without `on_give_up`,
    `SupervisorGaveUp` is raised out of `run`.

    Raises:
      ValueError: from the constructor, for a capacity or idle timeout that is not positive.
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[K, Inbox[M]], Actor],
        *,
        capacity: int,
        idle_timeout: float,
        policy: RestartPolicy = DEFAULT_POLICY,
        on_give_up: GiveUpHandler | None = None,
    ) -> None:
        if not isinstance(capacity, int) or capacity <= 0:
            raise ValueError(f"mailbox capacity must be a positive int, not {capacity!r}")
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0, not {idle_timeout!r}")
        self.name = name
        self._factory = factory
        self._capacity = capacity
        self._idle_timeout = idle_timeout
        self._on_give_up = on_give_up
        self._supervisor = Supervisor(name, policy=policy)
        self._entries: dict[K, _Entry[M]] = {}
        self._started = 0
        self._retired = 0
        self._gave_up = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the keyed actors until cancelled; call ``task_status.started()`` once ready.

        Raises:
          SupervisorGaveUp: an actor crashed too often and there is no `on_give_up`.
        """
        await self._supervisor.run(task_status=task_status)

    def get(self, key: K) -> Address[M]:
        """The address of the actor for `key`, starting one if there is none. No checkpoint.

        Raises:
          RegistryStopped: there is no live actor for `key` and the registry is not running
              (not started yet, or stopped: at shutdown).
        """
        entry = self._entries.get(key)
        if entry is not None and not entry.inbox.closed:
            return entry.address
        if not self._supervisor.running:
            raise RegistryStopped(self.name)
        address, inbox = open_mailbox[M](
            self._capacity, f"{self.name}[{key!r}]", idle_timeout=self._idle_timeout
        )
        entry = _Entry(address, inbox)
        self._supervisor.start_soon(
            address.name,
            functools.partial(self._factory, key, inbox),
            inbox=inbox,
            on_give_up=self._on_give_up,
            on_exit=functools.partial(self._forget, key, entry),
            log_context={"registry": self.name, "key": key},
        )
        self._entries[key] = entry
        self._started += 1
        return address

    async def tell(self, key: K, message: M) -> None:
        """``get(key).tell(message)``: waits for room. Raises as `get` and `Address.tell` do."""
        await self.get(key).tell(message)

    def tell_nowait(self, key: K, message: M) -> None:
        """``get(key).tell_nowait(message)``. Raises as `get` and `Address.tell_nowait` do."""
        self.get(key).tell_nowait(message)

    async def ask(
        self,
        key: K,
        build: Callable[[Reply[R]], M],
        *,
        timeout: float,  # noqa: ASYNC109 (the ask's own contract, see Address.ask)
    ) -> R:
        """``get(key).ask(build, timeout=timeout)``. Raises as `get` and `Address.ask` do."""
        return await self.get(key).ask(build, timeout=timeout)

    def statistics(self) -> RegistryStatistics:
        return RegistryStatistics(
            name=self.name,
            live=len(self._entries),
            started=self._started,
            retired=self._retired,
            gave_up=self._gave_up,
            restarts=self._supervisor.restarts,
        )

    def _forget(self, key: K, entry: _Entry[M], state: ChildState) -> None:
        # A retired actor may already have been replaced by get(); leave the new one alone.
        if self._entries.get(key) is entry:
            del self._entries[key]
        if state is ChildState.FINISHED:
            self._retired += 1
        elif state is ChildState.GAVE_UP:
            self._gave_up += 1
