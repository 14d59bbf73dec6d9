"""The streaming benchmark's Python peer: Starlette's `FileResponse` (ranges, conditional
requests) on the node's server, Hypercorn's trio worker, with the node's Hypercorn settings.

    python -m tests.bench.starlette_files ROOT   (prints "listening on URL"; stopped with SIGTERM)

`GET /<path>` serves ROOT/<path>. Needs the `bench` extra (pip install -e '.[bench]').
"""

from __future__ import annotations

import resource
import signal
import sys
from pathlib import Path

import hypercorn.config
import hypercorn.trio
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route


def files_app(root: Path) -> Starlette:
    async def serve(request: Request) -> FileResponse:
        return FileResponse(root / request.path_params["path"])

    return Starlette(routes=[Route("/{path:path}", serve)])


async def main(root: Path) -> None:
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
            binds = await nursery.start(hypercorn.trio.serve, files_app(root), config)
            print(f"listening on {binds[0]}", flush=True)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
