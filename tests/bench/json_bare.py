"""The dashboard benchmark's baseline for JSON GETs: a bare Quart-Trio route on the node's
Hypercorn settings (its trio worker) and collector settings (`lms.heap`), with no middleware,
no token, no cache and no database.

    python -m tests.bench.json_bare   (prints "listening on URL"; stopped with SIGTERM)

`GET /api/v1/users/me` answers a constant user shaped like the node's.
"""

from __future__ import annotations

import resource
import signal

import hypercorn.config
import hypercorn.trio
import trio
from quart_trio import QuartTrio

from lms.heap import settle_after_startup

app = QuartTrio("bare")

USER = {
    "id": 4242,
    "email": "learner-4242@bench.lms",
    "name": "Learner 4242",
    "role": "learner",
    "time_zone": "UTC",
    "created_at": "2026-01-01T00:00:00Z",
}


@app.get("/api/v1/users/me")
async def me() -> dict[str, object]:
    return USER


async def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.backlog = 4096
    config.accesslog = None
    config.errorlog = None
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(stop)
            binds = await nursery.start(hypercorn.trio.serve, app, config)
            settle_after_startup()
            print(f"listening on {binds[0]}", flush=True)


if __name__ == "__main__":
    trio.run(main)
