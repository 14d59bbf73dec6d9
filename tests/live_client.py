"""A live-protocol client for tests and benchmarks: a trio-websocket connection that speaks the
frames of `proto/frames.py` as plain JSON, the way any client would."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

Frame = dict[str, Any]

DEFAULT_WAIT = 10.0


class LiveClient:
    """One socket. `expect` reads until a frame of the wanted type (batches are unpacked; the
    frames read past are kept in `seen`); pings are answered unless `answer_pings` is False."""

    def __init__(self, ws: WebSocketConnection, *, answer_pings: bool = True) -> None:
        self.ws = ws
        self.answer_pings = answer_pings
        self.seen: list[Frame] = []
        self._pending: deque[Frame] = deque()
        self.welcome: Frame = {}

    async def send(self, frame: Frame) -> None:
        await self.ws.send_message(json.dumps(frame))

    async def receive(self) -> Frame:
        """The next frame (one at a time, out of a batch too)."""
        while not self._pending:
            message = json.loads(await self.ws.get_message())
            if message["type"] == "batch":
                self._pending.extend(message["frames"])
            else:
                self._pending.append(message)
        frame = self._pending.popleft()
        if frame["type"] == "ping" and self.answer_pings:
            await self.send({"type": "pong", "t": frame.get("t")})
        return frame

    async def record(self) -> Frame:
        """Receive the next frame and keep it in `seen`."""
        frame = await self.receive()
        self.seen.append(frame)
        return frame

    async def expect(self, kind: str, wait: float = DEFAULT_WAIT, **fields: Any) -> Frame:
        """The next frame of type `kind` whose fields include `fields`, within `wait` seconds."""
        with trio.fail_after(wait):
            while True:
                frame = await self.receive()
                self.seen.append(frame)
                if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                    return frame

    async def heartbeat(self, request_id: int, **update: Any) -> Frame:
        """Send a progress heartbeat and return its ack (or error) frame."""
        await self.send({"type": "progress", "id": request_id, "update": update})
        with trio.fail_after(DEFAULT_WAIT):
            while True:
                frame = await self.receive()
                if frame["type"] in ("ack", "error") and frame.get("id") == request_id:
                    return frame
                self.seen.append(frame)


def ws_url(http_url: str, path: str) -> str:
    return http_url.replace("http://", "ws://", 1).rstrip("/") + path


@asynccontextmanager
async def live_socket(
    base_url: str,
    path: str,
    token: str,
    *,
    device_id: str | None = None,
    keepalive: float | None = None,
    answer_pings: bool = True,
    **connect_options: Any,
) -> AsyncIterator[LiveClient]:
    """A socket on `path` (e.g. "/api/v1/ws/notifications"), authenticated and welcomed."""
    async with open_websocket_url(ws_url(base_url, path), **connect_options) as ws:
        client = LiveClient(ws, answer_pings=answer_pings)
        auth: Frame = {"type": "auth", "token": token}
        if device_id is not None:
            auth["device_id"] = device_id
        if keepalive is not None:
            auth["keepalive"] = keepalive
        await client.send(auth)
        client.welcome = await client.expect("welcome")
        yield client


def progress_path(course_id: int) -> str:
    return f"/api/v1/ws/progress/{course_id}"


NOTIFICATIONS = "/api/v1/ws/notifications"
