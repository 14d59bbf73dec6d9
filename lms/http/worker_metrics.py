"""`lms worker`'s `/metrics` (LMS_METRICS_PORT): a worker serves no API, so rather than a
Quart app, a few lines of ASGI on Hypercorn's trio worker answer `GET /metrics` with the
worker's registry and everything else with a 404."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import hypercorn.config
import hypercorn.trio
import trio

from lms.observability.metrics import CONTENT_TYPE, NodeMetrics

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class MetricsApp:
    """ASGI: `GET /metrics` (and HEAD) is the registry's exposition; anything else a 404."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # a WebSocket is refused by Hypercorn when the app returns without accepting
        if scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
            body = await self._metrics.exposition()
            await _answer(send, 200, CONTENT_TYPE, body, scope["method"] == "HEAD")
        else:
            await _answer(send, 404, "text/plain; charset=utf-8", b"not found\n", False)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _answer(send: Send, status: int, content_type: str, body: bytes, head: bool) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def serve_metrics(
    metrics: NodeMetrics,
    host: str,
    port: int,
    stop: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `metrics` on host:port until `stop()` returns; `task_status.started(binds)`."""
    config = hypercorn.config.Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1.0  # a scrape takes milliseconds
    await hypercorn.trio.serve(
        MetricsApp(metrics),  # type: ignore[arg-type]
        config,
        shutdown_trigger=stop,
        task_status=task_status,
    )
