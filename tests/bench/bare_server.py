"""The benchmarks' baseline servers' serving loop: an ASGI app on Hypercorn's trio worker with
the node's Hypercorn settings that matter to a benchmark (`lms.node._hypercorn_config`: backlog,
no Hypercorn logs); it prints "listening on URL" once bound and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import resource
import signal

import hypercorn.config
import hypercorn.trio
import trio
from hypercorn.typing import ASGIFramework

from lms.heap import settle_after_startup


def raise_descriptor_limit() -> None:
    """Thousands of connections need thousands of descriptors; children inherit the limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve_until_signalled(
    app: ASGIFramework,
    *,
    settle_heap: bool = True,
    websocket_max_message_size: int | None = None,
) -> None:
    """Serve `app` on 127.0.0.1 (a free port) until SIGTERM or SIGINT. `settle_heap` applies
    the node's collector settings (`lms.heap`), so a comparison is of the work, not the heaps."""
    raise_descriptor_limit()
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.backlog = 4096
    if websocket_max_message_size is not None:
        config.websocket_max_message_size = websocket_max_message_size
    config.accesslog = None
    config.errorlog = None
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(stop)
            binds = await nursery.start(hypercorn.trio.serve, app, config)
            if settle_heap:
                settle_after_startup()
            print(f"listening on {binds[0]}", flush=True)
