"""The dashboard benchmark's baseline for JSON GETs: a bare Quart-Trio route on the node's
Hypercorn settings (its trio worker) and collector settings (`lms.heap`), with no middleware,
no token, no cache and no database.

    python -m tests.bench.json_bare   (prints "listening on URL"; stopped with SIGTERM)

`GET /api/v1/users/me` answers a constant user shaped like the node's.
"""

from __future__ import annotations

import trio
from quart_trio import QuartTrio

from tests.bench.bare_server import serve_until_signalled

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


if __name__ == "__main__":
    trio.run(serve_until_signalled, app)
