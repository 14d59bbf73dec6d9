"""The Bus's transport between nodes: Redis pub/sub, one Redis channel per Bus channel.

Theory of operation
-------------------
`run` keeps one link to Redis at a time and rebuilds it after any failure, with backoff. A link
is a pub/sub connection plus a client for PUBLISH, and two jobs:

- listening: a blocking read loop runs on the asyncio side of the bridge (one crossing for the
  life of the link; see STACK.md: polling `get_message` through the bridge delivers late) and
  puts each message in a bounded trio channel; a trio task decodes it and hands it to the Bus.
  A message this node published itself comes back from Redis and is skipped.
- writing: subscription changes and queued messages are sent by one task, subscriptions first,
  queued messages in pipelined batches (one bridge crossing per batch).

Numbering: each message carries its number on its channel among this run's messages (the
run is named by the node id and a random suffix). A receiver remembers the last number it saw
of each sender on each channel it listens to and, when one is skipped (the sender dropped it
from a full queue, Redis published it while this node was not subscribed, this node's incoming
channel overflowed), calls `lost` for that channel before delivering. A number that goes back
is a new start (a resend after a failed batch, or a counter forgotten): taken as the new
baseline, never as a gap. What a receiver remembers is cleared when it unsubscribes and when
its link comes back (then `rejoined` covers everything anyway).

While Redis is away, `publish` keeps queueing (bounded: the oldest message is dropped when
full) and local delivery goes on without it. When the link is back, every channel is
subscribed again, the queue is flushed, and `rejoined` tells the Bus, whose rooms then tell
their clients to resync (what others published while this node was not subscribed is gone)
and re-publish their presence for the others to replace what they missed.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from collections.abc import Callable

import msgspec
import redis.asyncio
import redis.exceptions
import structlog
import trio
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from actors.bus import Lost, Rejoined, TransportStatistics
from lms.store import bridge
from proto.live import Envelope, LiveMessage

log = structlog.get_logger()

_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
_BATCH = 512
_INCOMING = 8192
# Channels whose outgoing numbers are remembered (least recently published forgotten first: a
# user's channel is published to while they watch): ~150 bytes each.
_NUMBERED_CHANNELS = 65_536

Forward = Callable[[bytes, bytes], None]


class RedisTransport:
    """Bus transport over Redis pub/sub. Full policies: outgoing, a queue of `queue_limit`
    messages that drops its oldest when full (only while Redis is slow or away); incoming, a
    channel of 8192 messages that drops new ones when this node falls that far behind."""

    def __init__(
        self,
        url: str,
        node: str,
        *,
        queue_limit: int = 10_000,
        backoff_initial: float = 0.1,
        backoff_max: float = 2.0,
    ) -> None:
        self._url = url
        self._origin = f"{node}-{secrets.token_hex(4)}"
        self._queue_limit = queue_limit
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._channels: set[str] = set()
        self._numbered: OrderedDict[str, int] = OrderedDict()  # channel -> last number sent
        self._heard: dict[str, dict[str, int]] = {}  # channel -> origin -> last number seen
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._wake = trio.Event()
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(Envelope)
        self._connected = False
        self._published = 0
        self._received = 0
        self._dropped = 0
        self._reconnects = 0
        self._gaps = 0
        self._links = 0  # links that came up, over the transport's life

    # --- what the Bus calls (never waits) -------------------------------------------------------

    def publish(self, channel: str, message: LiveMessage) -> None:
        if len(self._outgoing) >= self._queue_limit:
            self._outgoing.popleft()
            self._dropped += 1
        seq = self._numbered.pop(channel, 0) + 1
        self._numbered[channel] = seq
        if len(self._numbered) > _NUMBERED_CHANNELS:
            self._numbered.popitem(last=False)
        envelope = Envelope(self._origin, message, seq)
        self._outgoing.append((channel, self._encoder.encode(envelope)))
        self._wake.set()

    def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        self._wake.set()

    def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._heard.pop(channel, None)
        self._wake.set()

    def statistics(self) -> TransportStatistics:
        return TransportStatistics(
            connected=self._connected,
            published=self._published,
            received=self._received,
            dropped=self._dropped,
            reconnects=self._reconnects,
            queued=len(self._outgoing),
            gaps=self._gaps,
        )

    # --- the link -------------------------------------------------------------------------------

    async def run(
        self,
        deliver: Callable[[str, LiveMessage], None],
        rejoined: Rejoined,
        lost: Lost,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Keep a link to Redis until cancelled. Started at once: messages published before
        the first link is up are queued."""
        task_status.started()
        delay = self._backoff_initial
        while True:
            links = self._links
            try:
                await self._link(deliver, rejoined if links else None, lost)
            except* _DOWN as failures:
                error = repr(failures.exceptions[0])
                if self._links > links or (not links and delay == self._backoff_initial):
                    log.warning("redis_bus_down", error=error, retry_in=delay)
                if self._links > links:
                    delay = self._backoff_initial
            await trio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _link(
        self, deliver: Callable[[str, LiveMessage], None], rejoined: Rejoined | None, lost: Lost
    ) -> None:
        # No retries inside redis-py: a failure ends this link at once and run() rebuilds it.
        client = redis.asyncio.Redis.from_url(
            self._url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        pubsub = client.pubsub()
        try:
            await bridge.call(pubsub.connect)
            incoming, arrivals = trio.open_memory_channel[tuple[bytes, bytes]](_INCOMING)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(bridge.call, _listen, pubsub, self._forwarder(incoming))
                nursery.start_soon(self._deliver, arrivals, deliver, lost)
                subscribed: set[str] = set()
                await self._sync_subscriptions(pubsub, subscribed)
                self._connected = True
                self._links += 1
                self._heard.clear()  # numbers from before the link are no guide
                if rejoined is not None:
                    self._reconnects += 1
                    log.info("redis_bus_up", channels=len(subscribed))
                    rejoined()
                await self._write(client, pubsub, subscribed)
        finally:
            self._connected = False
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await bridge.call(pubsub.aclose)
                await bridge.call(client.aclose)

    def _forwarder(self, incoming: trio.MemorySendChannel[tuple[bytes, bytes]]) -> Forward:
        def forward(channel: bytes, data: bytes) -> None:
            try:
                incoming.send_nowait((channel, data))
            except trio.WouldBlock:
                self._dropped += 1

        return forward

    async def _deliver(
        self,
        arrivals: trio.MemoryReceiveChannel[tuple[bytes, bytes]],
        deliver: Callable[[str, LiveMessage], None],
        lost: Lost,
    ) -> None:
        async for channel, data in arrivals:
            try:
                envelope = self._decoder.decode(data)
            except msgspec.DecodeError as exc:
                log.warning(
                    "redis_bus_bad_message",
                    channel=channel.decode(errors="replace"),
                    error=str(exc),
                )
                continue
            if envelope.origin == self._origin:
                continue
            self._received += 1
            name = channel.decode()
            if self._skipped(name, envelope):
                self._gaps += 1
                log.warning("redis_bus_gap", channel=name, origin=envelope.origin)
                lost(name)
            deliver(name, envelope.message)

    def _skipped(self, channel: str, envelope: Envelope) -> bool:
        """Whether a message of `envelope`'s sender on `channel` is missing before it."""
        if not envelope.seq or channel not in self._channels:
            return False  # (a message still in flight after this node unsubscribed)
        heard = self._heard.setdefault(channel, {})
        last = heard.get(envelope.origin)
        heard[envelope.origin] = envelope.seq
        return last is not None and envelope.seq > last + 1

    async def _write(
        self, client: redis.asyncio.Redis, pubsub: PubSub, subscribed: set[str]
    ) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            await self._sync_subscriptions(pubsub, subscribed)
            while self._outgoing:
                batch = [self._outgoing.popleft() for _ in range(min(_BATCH, len(self._outgoing)))]
                try:
                    await bridge.call(_publish_all, client, batch)
                except BaseException:
                    self._outgoing.extendleft(reversed(batch))  # sent again on the next link
                    raise
                self._published += len(batch)

    async def _sync_subscriptions(self, pubsub: PubSub, subscribed: set[str]) -> None:
        wanted = set(self._channels)
        if added := wanted - subscribed:
            await bridge.call(pubsub.subscribe, *added)
        if removed := subscribed - wanted:
            await bridge.call(pubsub.unsubscribe, *removed)
        subscribed.clear()
        subscribed.update(wanted)


# The two functions below run on the asyncio side of the bridge.


async def _listen(pubsub: PubSub, forward: Forward) -> None:
    """Read pub/sub messages until the connection fails; each crosses to trio via `forward`."""
    while True:
        response = await pubsub.parse_response(block=True)
        message = await pubsub.handle_message(response, ignore_subscribe_messages=True)
        if message is not None and message["type"] == "message":
            forward(message["channel"], message["data"])


async def _publish_all(client: redis.asyncio.Redis, batch: list[tuple[str, bytes]]) -> None:
    async with client.pipeline(transaction=False) as pipe:
        for channel, data in batch:
            pipe.publish(channel, data)
        await pipe.execute()
