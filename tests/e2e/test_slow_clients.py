"""Clients that send a request's body too slowly, or never, against a real node: each is
answered 408 and its connection closed once the body timeout has passed, so 200 of them do not
keep 200 sockets, and other clients are served meanwhile as fast as before.

(A WebSocket client that stops reading while its room is busy is cut with 1013 while the others
keep getting every frame within 2 s: tests/e2e/test_live_two_nodes.py,
test_a_client_that_stops_reading_is_cut_off_and_the_room_goes_on.)"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from tests.e2e.nodes import NodeProcess, database_node_env, start_node
from tests.polling import eventually

pytestmark = pytest.mark.e2e

BODY_TIMEOUT = 2  # LMS_BODY_TIMEOUT for this node; the default is 30
SLOW_CLIENTS = 200
# What a client may wait beyond the timeout for its 408 and the close: the guard's timer, the
# node answering 200 of them at once on a shared machine.
SLACK = 3.0
FAST_LATENCY = 0.5  # the most a /health may take while the slow clients are held


@dataclass
class Slow:
    """What one slow client got: the start of the answer, and when the node closed it."""

    answer: bytes
    closed_after: float


def head(url: str, length: int) -> bytes:
    return (
        f"POST /api/v1/progress HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def slow_client(url: str, length: int, trickle: bool, results: list[Slow]) -> None:
    """Send the head and a first byte of a `length`-byte body; then a byte every 0.2 s
    (`trickle`) or nothing; read until the node closes the connection."""
    address = urlsplit(url)
    stream = await trio.open_tcp_stream(address.hostname, address.port)
    started = trio.current_time()
    async with stream, trio.open_nursery() as nursery:
        await stream.send_all(head(url, length) + b"{")
        if trickle:
            nursery.start_soon(_trickle, stream)
        answer = b""
        while chunk := await stream.receive_some():
            answer += chunk
        nursery.cancel_scope.cancel()
    results.append(Slow(answer, trio.current_time() - started))


async def _trickle(stream: trio.SocketStream) -> None:
    try:
        while True:
            await trio.sleep(0.2)
            await stream.send_all(b" ")
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return  # the node closed it


def hold_slow_clients(nursery: trio.Nursery, node: NodeProcess, results: list[Slow]) -> None:
    """Start the slow clients: small bodies trickled (the deadline is for the whole body) or
    stalled, and a few large ones stalled (streamed: the deadline is between pieces)."""
    for n in range(SLOW_CLIENTS):
        length = 100_000 if n % 20 == 0 else 1000
        nursery.start_soon(slow_client, node.url, length, n % 2 == 1, results)


def open_fds(node: NodeProcess) -> int:
    return len(os.listdir(f"/proc/{node.process.pid}/fd"))


async def test_slow_bodies_get_408_and_their_sockets_back_while_others_are_served(
    database_url: str, tmp_path: Path
) -> None:
    env = database_node_env(
        tmp_path, database_url, LMS_TRANSCODE_WORKERS="0", LMS_BODY_TIMEOUT=str(BODY_TIMEOUT)
    )
    node = await start_node(env, tmp_path / "node.log")
    try:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as api:
            assert (await api.get("/health")).status_code == 200
            before = open_fds(node)
            results: list[Slow] = []
            latencies: list[float] = []
            with trio.fail_after(BODY_TIMEOUT + SLACK):  # every slow client cut by then
                async with trio.open_nursery() as nursery:
                    hold_slow_clients(nursery, node, results)
                    held = await eventually(
                        lambda: trio.to_thread.run_sync(open_fds, node),
                        lambda fds: fds >= before + SLOW_CLIENTS,
                        within=BODY_TIMEOUT,
                    )
                    while len(results) < SLOW_CLIENTS / 2:  # others are served meanwhile
                        started = trio.current_time()
                        assert (await api.get("/health")).status_code == 200
                        latencies.append(trio.current_time() - started)
                        await trio.sleep(0.05)
            await eventually(
                lambda: trio.to_thread.run_sync(open_fds, node),
                lambda fds: fds <= before + 5,
                within=SLACK,
            )
    finally:
        await node.stop()

    assert held - before >= SLOW_CLIENTS  # each slow client held a socket, for a while
    assert {r.answer.split(b"\r\n", 1)[0] for r in results} == {b"HTTP/1.1 408 "}
    assert all(b"body_timeout" in r.answer for r in results)
    slowest = max(r.closed_after for r in results)
    assert min(r.closed_after for r in results) >= BODY_TIMEOUT
    assert slowest < BODY_TIMEOUT + SLACK
    assert max(latencies) < FAST_LATENCY, latencies
