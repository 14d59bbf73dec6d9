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
import resource
import signal
import time
from collections import defaultdict

import hypercorn.config
import hypercorn.trio
import trio
from quart import websocket
from quart.wrappers import Websocket
from quart_trio import QuartTrio

from lms.heap import settle_after_startup
from proto.frames import MAX_FRAME_BYTES

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


async def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.backlog = 4096
    config.websocket_max_message_size = MAX_FRAME_BYTES
    config.accesslog = None
    config.errorlog = None
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def stop() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(stop)
            binds = await nursery.start(hypercorn.trio.serve, app, config)
            settle_after_startup()  # the node's collector settings: compare frames, not heaps
            print(f"listening on {binds[0]}", flush=True)


if __name__ == "__main__":
    trio.run(main)
