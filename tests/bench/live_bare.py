"""The live benchmark's baseline: a bare Quart-Trio app on the same Hypercorn settings that
sends the same frames with no actors, no database and no checks, under the node's collector
settings (`lms.heap`).

    python -m tests.bench.live_bare   (prints "listening on URL"; stopped with SIGTERM)

`/api/v1/ws/progress/{course_id}` answers auth with a welcome and subscribe with a snapshot;
each progress heartbeat gets an ack (with a state shaped like the real one) and is sent on to
the course's instructors at once, one frame each; `POST /announce` sends one notification,
encoded once, to every connected learner.
"""

from __future__ import annotations

import base64
import json
import time
from collections import defaultdict
from functools import partial

import trio
from quart import websocket
from quart.wrappers import Websocket
from quart_trio import QuartTrio

from proto.frames import MAX_FRAME_BYTES
from tests.bench.bare_server import serve_until_signalled

app = QuartTrio("bare")
learners: set[Websocket] = set()
instructors: dict[int, set[Websocket]] = defaultdict(set)


def _role(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims["role"]


@app.websocket("/api/v1/ws/progress/<int:course_id>")
async def progress(course_id: int) -> None:
    ws: Websocket = websocket._get_current_object()  # type: ignore[attr-defined]
    await ws.accept()
    auth = json.loads(await ws.receive())
    role = _role(auth["token"])
    room = instructors[course_id] if role == "instructor" else learners
    room.add(ws)
    try:
        await ws.send(
            json.dumps({"type": "welcome", "v": 1, "user_id": 0, "conn": "bare", "keepalive": 20.0})
        )
        while True:
            frame = json.loads(await ws.receive())
            if frame["type"] == "subscribe":
                await ws.send(
                    json.dumps(
                        {
                            "type": "snapshot",
                            "course_id": course_id,
                            "epoch": "bare",
                            "seq": 0,
                            "online": [],
                            "learners": [],
                        }
                    )
                )
            elif frame["type"] == "progress":
                update = frame["update"]
                state = {
                    "content_id": update["content_id"],
                    "course_id": course_id,
                    "position": update["position"],
                    "played": update["played"],
                    "watched_seconds": 5.0,
                    "duration": 3600.0,
                    "coverage": 0.001,
                    "completed": False,
                    "completed_at": None,
                    "updated_at": "2026-01-01T00:00:00Z",
                }
                await ws.send(json.dumps({"type": "ack", "id": frame["id"], "state": state}))
                event = json.dumps(
                    {
                        "type": "progress",
                        "user_id": 0,
                        "course_id": course_id,
                        **{
                            k: state[k]
                            for k in (
                                "content_id",
                                "position",
                                "watched_seconds",
                                "coverage",
                                "completed",
                            )
                        },
                    }
                )
                for teacher in list(instructors[course_id]):
                    await teacher.send(event)
    finally:
        room.discard(ws)


@app.post("/announce")
async def announce() -> dict[str, int]:
    text = json.dumps(
        {
            "type": "notification",
            "kind": "announcement",
            "course_id": 0,
            "announcement": {
                "type": "announcement",
                "course_id": 0,
                "id": "x",
                "author_id": 0,
                "author_name": "bench",
                "text": "Hello, everyone",
                "at": time.time(),
            },
        }
    )
    for ws in list(learners):
        await ws.send(text)
    return {"sent": len(learners)}


if __name__ == "__main__":
    # The node refuses larger frames too (close code 1009).
    trio.run(partial(serve_until_signalled, app, websocket_max_message_size=MAX_FRAME_BYTES))
