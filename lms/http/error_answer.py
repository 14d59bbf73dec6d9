"""A JSON error made once and sent as is by the node's own ASGI layers (in front of Quart): the
body every API error has (`proto.api.ErrorBody`), its length, and `Cache-Control: no-store`."""

from __future__ import annotations

import proto
from lms.http.asgi import Send
from proto.api import ErrorBody, ErrorDetail


class ErrorAnswer:
    """An error's status, headers and JSON body, encoded once."""

    def __init__(self, status: int, code: str, message: str, *extra: tuple[bytes, bytes]) -> None:
        self.status = status
        self.body = proto.encode(ErrorBody(ErrorDetail(code, message)))
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self.body)).encode()),
            (b"cache-control", b"no-store"),
            *extra,
        ]

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})
