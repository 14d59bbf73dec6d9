"""A TCP link that delays what a client sends by a fixed time: a server (Redis) further away
than loopback, so a race that a round trip decides is lost by the slower side every time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from urllib.parse import urlsplit, urlunsplit

import trio


@asynccontextmanager
async def slow_link(url: str, delay: float) -> AsyncIterator[str]:
    """`url` (scheme://host:port/...) reached through a local port whose requests arrive
    `delay` seconds late, in order; yields the URL to use instead. Closed with the block."""
    target = urlsplit(url)
    host, port = target.hostname, target.port
    if host is None or port is None:
        raise ValueError(f"{url!r} names no host and port")

    async def pump(source: trio.SocketStream, sink: trio.SocketStream, lag: float) -> None:
        try:
            async for chunk in source:
                await trio.sleep(lag)  # the link's latency, not a synchronisation
                await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the other side went first
        await sink.aclose()  # and the other pump's stream with it

    async def handle(client: trio.SocketStream) -> None:
        server = await trio.open_tcp_stream(host, port)
        async with client, server, trio.open_nursery() as nursery:
            nursery.start_soon(pump, client, server, delay)
            nursery.start_soon(pump, server, client, 0.0)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        near = listeners[0].socket.getsockname()[1]
        yield urlunsplit(target._replace(netloc=f"127.0.0.1:{near}"))
        nursery.cancel_scope.cancel()
