"""The streaming benchmark's Python peer: Starlette's `FileResponse` (ranges, conditional
requests) on the node's server, Hypercorn's trio worker, with the node's Hypercorn settings.

    python -m tests.bench.starlette_files ROOT   (prints "listening on URL"; stopped with SIGTERM)

`GET /<path>` serves ROOT/<path>. Needs the `bench` extra (pip install -e '.[bench]').
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route

from tests.bench.bare_server import serve_until_signalled


def files_app(root: Path) -> Starlette:
    async def serve(request: Request) -> FileResponse:
        return FileResponse(root / request.path_params["path"])

    return Starlette(routes=[Route("/{path:path}", serve)])


if __name__ == "__main__":
    # The peer as the streaming benchmark has always measured it: Python's own collector settings.
    trio.run(partial(serve_until_signalled, files_app(Path(sys.argv[1])), settle_heap=False))
