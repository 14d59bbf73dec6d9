"""The Bus: named channels that carry live messages to this node's rooms and sessions, and,
through a pluggable transport, to every other node's.

Theory of operation
-------------------
A subscriber is a function that must not block (it `tell_nowait`s into an actor's mailbox).
`publish` calls this node's subscribers of the channel at once, in the caller's task, then hands
the message to the transport, which sends it to the other nodes in the background; messages
the transport receives from other nodes are delivered to this node's subscribers the same way.
A node never hears its own messages back from the transport, so local delivery never depends
on it: with Redis gone, every node keeps serving the clients it holds.

The subscriber table is plain data on the trio thread, changed only by `subscribe` (and the
exit of its `with` block), with no checkpoint in between, so there is no actor or lock around
it. The transport is told of the first subscriber of a channel and of the last one leaving,
and resubscribes everything itself after a reconnection; it then calls `rejoined`, and the
Bus passes that on to every subscriber that asked for it: rooms tell their clients to resync
(what other nodes published while the link was down may be lost, and no numbering here shows
it) and publish their presence again, replacing what the other nodes missed. A message can be
lost with the link up too (another node's queue overflowed while its own link was down, or
this node fell too far behind): the transport sees the gap in the sender's numbering and calls
`lost` with the channel, and the Bus calls that channel's subscribers' `rejoined` the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from proto.live import LiveMessage

Deliver = Callable[[LiveMessage], None]
Rejoined = Callable[[], None]
Lost = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TransportStatistics:
    """A snapshot of a transport.

    Attributes:
      connected: whether the link to the other nodes is up now.
      published: messages sent to other nodes, over its life.
      received: messages received from other nodes (its own excluded), over its life.
      dropped: messages lost: the outgoing queue overflowed (link down too long) or the
          incoming one did (this node too slow).
      reconnects: times the link came back after going down.
      queued: messages waiting to be sent.
      gaps: times a message of another node was found missing (a number skipped).
    """

    connected: bool
    published: int
    received: int
    dropped: int
    reconnects: int
    queued: int
    gaps: int = 0


class Transport(Protocol):
    """How a Bus reaches the other nodes (Redis pub/sub: `lms/store/redis_bus.py`).

    `publish`, `subscribe` and `unsubscribe` never wait: the transport queues the work (the
    outgoing queue is bounded; when full, the oldest message is dropped and counted) and does
    it from `run`, reconnecting with backoff whenever the link fails. `run` calls `rejoined`
    when the link is back, and `lost(channel)` when it finds a message of the channel missing.
    """

    async def run(
        self,
        deliver: Callable[[str, LiveMessage], None],
        rejoined: Rejoined,
        lost: Lost,
        *,
        task_status: trio.TaskStatus[None] = ...,
    ) -> None: ...

    def publish(self, channel: str, message: LiveMessage) -> None: ...

    def subscribe(self, channel: str) -> None: ...

    def unsubscribe(self, channel: str) -> None: ...

    def statistics(self) -> TransportStatistics: ...


@dataclass(frozen=True, slots=True)
class BusStatistics:
    """A snapshot of the bus: local channels and subscribers, deliveries, and the transport."""

    channels: int
    subscribers: int
    published: int
    delivered: int
    transport: TransportStatistics | None


class Subscription:
    """One subscriber of one channel, for as long as its `with` block lasts (see
    `Bus.subscribe`). A class rather than a generator-based context manager: every room and
    session holds one for its whole life, and a suspended generator costs ~400 bytes more."""

    __slots__ = ("_bus", "channel", "deliver", "rejoined")

    def __init__(self, bus: Bus, channel: str, deliver: Deliver, rejoined: Rejoined | None) -> None:
        self._bus = bus
        self.channel = channel
        self.deliver = deliver
        self.rejoined = rejoined

    def __enter__(self) -> Subscription:
        self._bus._add(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bus._remove(self)


class Bus:
    """Channels of live messages, in memory on one node, across nodes with a `transport`.

    Start it with ``await nursery.start(bus.run)`` (it runs the transport until cancelled).
    """

    def __init__(self, transport: Transport | None = None) -> None:
        self._transport = transport
        self._channels: dict[str, list[Subscription]] = {}
        self._published = 0
        self._delivered = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if self._transport is None:
            task_status.started()
            await trio.sleep_forever()
        await self._transport.run(
            self.deliver_local, self._rejoined, self._lost, task_status=task_status
        )

    def subscribe(
        self, channel: str, deliver: Deliver, *, rejoined: Rejoined | None = None
    ) -> Subscription:
        """Deliver `channel`'s messages, from this node and others, to `deliver` while the
        ``with`` block of the returned subscription lasts; call `rejoined` whenever messages of
        other nodes may have been lost: after the link to them comes back, or when one is found
        missing."""
        return Subscription(self, channel, deliver, rejoined)

    def publish(self, channel: str, message: LiveMessage, *, here: bool = True) -> None:
        """Deliver `message` to this node's subscribers of `channel` now (unless `here` is
        False: for what only other nodes need), and queue it for the other nodes. Never waits."""
        self._published += 1
        if here:
            self.deliver_local(channel, message)
        if self._transport is not None:
            self._transport.publish(channel, message)

    def deliver_local(self, channel: str, message: LiveMessage) -> None:
        """Deliver `message` to this node's subscribers of `channel` only."""
        subscribers = self._channels.get(channel)
        if not subscribers:
            return
        # A copy: a subscriber may leave (ending its `with`) only at a checkpoint, but a
        # deliver function is foreign code and the list must not change under this loop.
        for subscriber in tuple(subscribers):
            subscriber.deliver(message)
            self._delivered += 1

    def subscribed(self, channel: str) -> bool:
        return channel in self._channels

    def statistics(self) -> BusStatistics:
        return BusStatistics(
            channels=len(self._channels),
            subscribers=sum(len(s) for s in self._channels.values()),
            published=self._published,
            delivered=self._delivered,
            transport=None if self._transport is None else self._transport.statistics(),
        )

    def _add(self, subscription: Subscription) -> None:
        subscribers = self._channels.setdefault(subscription.channel, [])
        subscribers.append(subscription)
        if len(subscribers) == 1 and self._transport is not None:
            self._transport.subscribe(subscription.channel)

    def _remove(self, subscription: Subscription) -> None:
        channel = subscription.channel
        subscribers = self._channels[channel]
        subscribers.remove(subscription)
        if not subscribers:
            del self._channels[channel]
            if self._transport is not None:
                self._transport.unsubscribe(channel)

    def _rejoined(self) -> None:
        for channel in tuple(self._channels):
            self._lost(channel)

    def _lost(self, channel: str) -> None:
        for subscriber in tuple(self._channels.get(channel, ())):
            if subscriber.rejoined is not None:
                subscriber.rejoined()
