"""The node's keep-alive: silent clients are pinged after one period and cut after two, talking
ones are left alone. On trio's mock clock (autojump: each test asks for it, which is how
pytest-trio runs the test on it), so periods of seconds take no time."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from actors.connection import Connection, Peer
from actors.keepalive import KEEPALIVE_TIMEOUT, TICK, KeepAlive


@pytest.fixture
async def keepalive(nursery: trio.Nursery) -> KeepAlive:
    watcher = KeepAlive()
    nursery.start_soon(watcher.run)
    return watcher


def connection(n: int, keepalive: float) -> Connection:
    return Connection(Peer(f"a/{n}", n, f"user {n}"), keepalive=keepalive)


async def taken(conn: Connection) -> list[str]:
    """The types of the frames queued on `conn` since last taken."""
    if not conn.queued:
        return []
    return [json.loads(text)["type"] for text in await conn.next_frames()]


async def test_a_silent_client_is_pinged_after_one_period_and_cut_after_two(
    keepalive: KeepAlive, autojump_clock: trio.testing.MockClock
) -> None:
    conn = connection(1, keepalive=10)
    keepalive.watch(conn)
    await trio.sleep(10 - TICK)
    assert await taken(conn) == []
    assert conn.open
    await trio.sleep(2 * TICK)
    assert await taken(conn) == ["ping"]
    assert conn.open
    await trio.sleep(10)
    assert conn.close_code == KEEPALIVE_TIMEOUT
    assert await taken(conn) == []  # pinged once per silence
    assert keepalive.watched == 0


async def test_a_client_that_talks_is_never_pinged(
    keepalive: KeepAlive, autojump_clock: trio.testing.MockClock
) -> None:
    conn = connection(1, keepalive=10)
    keepalive.watch(conn)
    for _ in range(10):
        await trio.sleep(6)
        conn.heard()
    assert await taken(conn) == []
    assert conn.open


async def test_answering_the_ping_keeps_the_client(
    keepalive: KeepAlive, autojump_clock: trio.testing.MockClock
) -> None:
    conn = connection(1, keepalive=10)
    keepalive.watch(conn)
    await trio.sleep(15)
    conn.heard()  # its pong
    await trio.sleep(15)  # silent again: pinged again, not cut
    assert await taken(conn) == ["ping", "ping"]
    assert conn.open
    await trio.sleep(10)
    assert conn.close_code == KEEPALIVE_TIMEOUT


async def test_each_client_is_held_to_its_own_period(
    keepalive: KeepAlive, autojump_clock: trio.testing.MockClock
) -> None:
    short, long = connection(1, keepalive=2), connection(2, keepalive=30)
    keepalive.watch(long)
    keepalive.watch(short)
    await trio.sleep(5)
    assert short.close_code == KEEPALIVE_TIMEOUT
    assert long.open
    assert await taken(long) == []


async def test_a_forgotten_connection_is_left_alone(
    keepalive: KeepAlive, autojump_clock: trio.testing.MockClock
) -> None:
    conn = connection(1, keepalive=1)
    keepalive.watch(conn)
    keepalive.forget(conn)
    await trio.sleep(5)
    assert conn.open
    assert await taken(conn) == []
    assert keepalive.watched == 0


async def test_a_pause_of_the_whole_node_is_not_counted_as_the_clients_silence(
    keepalive: KeepAlive, autojump_clock: trio.testing.MockClock
) -> None:
    talks, dead = connection(1, keepalive=1), connection(2, keepalive=1)
    keepalive.watch(talks)
    keepalive.watch(dead)
    await trio.sleep(0.5)
    talks.heard()
    dead.heard()
    autojump_clock.jump(5)  # the node stops for 5 s (SIGSTOP, a VM stall): nobody is heard
    await trio.sleep(TICK)
    assert keepalive.stalls == 1
    assert talks.open
    assert dead.open
    await trio.sleep(1)  # one keep-alive of awake time: both pinged, neither cut
    assert await taken(talks) == ["ping"]
    assert await taken(dead) == ["ping"]
    talks.heard()  # its pong
    await trio.sleep(1 + 2 * TICK)
    assert talks.open
    assert dead.close_code == KEEPALIVE_TIMEOUT  # silent two periods while the node was awake
