"""The Bus: local fan-out in memory, and between nodes over a real Redis, through an outage."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
import redis
import trio

from actors.bus import Bus
from lms.store import bridge
from lms.store.redis_bus import RedisTransport
from proto.frames import Member
from proto.live import Envelope, Joined, LiveMessage
from tests.polling import eventually
from tests.redis_restart import restart_redis
from tests.services import RunningRedis, start_redis

WAIT = 10.0


def joined(n: int) -> Joined:
    return Joined(1, "test", Member(f"x/{n}", n, f"user {n}", "learner"))


class Inbox:
    """What a subscriber received, with a way to wait for a given message."""

    def __init__(self) -> None:
        self.messages: list[LiveMessage] = []
        self._changed = trio.Event()

    def __call__(self, message: LiveMessage) -> None:
        self.messages.append(message)
        self._changed.set()

    async def wait_for(self, message: LiveMessage) -> None:
        with trio.fail_after(WAIT):
            while message not in self.messages:
                self._changed = trio.Event()
                await self._changed.wait()


async def wait_until(condition: Callable[[], bool]) -> None:
    """For states that announce themselves with no event (a transport's link coming up):
    look again every 10 ms, up to the deadline."""
    with trio.fail_after(WAIT):
        while not condition():  # noqa: ASYNC110 (polled state, no event to wait on)
            await trio.sleep(0.01)


async def test_local_subscribers_of_a_channel_get_its_messages_at_once(
    nursery: trio.Nursery,
) -> None:
    bus = Bus()
    await nursery.start(bus.run)
    first, second, other = Inbox(), Inbox(), Inbox()
    with bus.subscribe("course:1", first), bus.subscribe("course:2", other):
        with bus.subscribe("course:1", second):
            bus.publish("course:1", joined(1))
            assert first.messages == second.messages == [joined(1)]
        bus.publish("course:1", joined(2))
        bus.publish("course:1", joined(3), here=False)  # for other nodes only
        assert second.messages == [joined(1)]
        assert first.messages == [joined(1), joined(2)]
        assert other.messages == []
        assert bus.statistics().subscribers == 2
    assert not bus.subscribed("course:1")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[list[RunningRedis]]:
    """A Redis of this test's own, to stop and start again (the list holds the current one)."""
    servers = [start_redis(tmp_path)]
    yield servers
    servers[-1].stop()


async def test_nodes_share_channels_over_redis_and_catch_up_after_an_outage(
    redis_server: list[RunningRedis],
) -> None:
    url = redis_server[0].url
    async with bridge.open_bridge(), trio.open_nursery() as nursery:
        a = Bus(RedisTransport(url, "a", backoff_max=0.2))
        b = Bus(RedisTransport(url, "b", backoff_max=0.2))
        await nursery.start(a.run)
        await nursery.start(b.run)
        on_a, on_b, b_rejoined = Inbox(), Inbox(), trio.Event()
        with a.subscribe("course:1", on_a), b.subscribe("course:1", on_b, rejoined=b_rejoined.set):
            await wait_until(lambda: _connected(a) and _connected(b))
            a.publish("course:1", joined(1))
            await on_b.wait_for(joined(1))
            assert on_a.messages == [joined(1)]  # delivered here once, not again from Redis

            await trio.to_thread.run_sync(redis_server[0].stop)
            a.publish("course:1", joined(2))
            assert on_a.messages[-1] == joined(2)  # this node's clients do not wait for Redis
            await wait_until(lambda: not _connected(a))

            redis_server.append(await trio.to_thread.run_sync(restart_redis, redis_server[0]))
            # Catching up: b is told it rejoined (so its rooms resync their clients), and what a
            # queued while Redis was away is sent on; b hears it unless a sent it before b had
            # subscribed again (Redis keeps nothing for absent subscribers: the resync covers it).
            with trio.fail_after(WAIT):
                await b_rejoined.wait()
            a.publish("course:1", joined(3))
            await on_b.wait_for(joined(3))
            assert on_b.messages[-2:] in ([joined(2), joined(3)], [joined(1), joined(3)])
            assert a.statistics().transport.reconnects == 1  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()


async def test_a_message_missing_from_another_nodes_numbering_tells_the_channels_subscribers(
    redis_server: list[RunningRedis],
) -> None:
    """Another node's messages, written to Redis as that node would, with one never arriving
    (dropped from its full queue while its own link was down, say): the link here never
    dropped, so only the numbering shows the hole."""
    url = redis_server[0].url
    other = redis.Redis.from_url(url)
    encoder = msgspec.json.Encoder()

    def send(seq: int) -> int:
        """Publish the other node's message number `seq`; how many nodes listened."""
        return other.publish("course:1", encoder.encode(Envelope("a-0001", joined(seq), seq)))

    async def listening() -> bool:
        return await trio.to_thread.run_sync(send, 1) > 0  # sending 1 again is no gap

    async with bridge.open_bridge(), trio.open_nursery() as nursery:
        b = Bus(RedisTransport(url, "b"))
        await nursery.start(b.run)
        on_b, lost = Inbox(), trio.Event()
        with b.subscribe("course:1", on_b, rejoined=lost.set):
            await eventually(listening, bool, within=WAIT)
            await trio.to_thread.run_sync(send, 2)
            await on_b.wait_for(joined(2))
            assert not lost.is_set()
            await trio.to_thread.run_sync(send, 4)  # 3 never comes
            await on_b.wait_for(joined(4))
            assert lost.is_set()
            on_b.messages.clear()
            await trio.to_thread.run_sync(send, 1)  # a new start (a resend): not a gap
            await trio.to_thread.run_sync(send, 2)
            await on_b.wait_for(joined(2))
            assert b.statistics().transport.gaps == 1  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()
    other.close()


def _connected(bus: Bus) -> bool:
    transport = bus.statistics().transport
    return transport is not None and transport.connected
