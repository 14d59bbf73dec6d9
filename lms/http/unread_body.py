"""Request bodies a handler may never read must not stall the connection they came on.

Why: a handler may answer without reading the body (a GET carrying JSON, a 401 for an upload,
a page). When the answer is ready before the body has arrived, Hypercorn 0.18 with Quart-Trio
neither recycles the connection nor closes it: the next request on that keep-alive connection
hung until the client's timeout, every few hundred requests, and at once when the body trailed
the headers by a millisecond (tests/lms/http/test_unread_body.py). So:

- a body of at most `READ_FIRST_BYTES` (every JSON body) is received in full before the app
  sees the request, and handed to it from memory: the answer can never overtake it;
- a larger or chunked body (uploads, which their handlers read as it streams) is passed through;
  an answer that starts before it has been received in full says `Connection: close`, which is
  what HTTP offers for it: the connection ends after the answer and the client opens a new one.
"""

from __future__ import annotations

from lms.http.asgi import ASGIApp, Message, Receive, Scope, Send

READ_FIRST_BYTES = 64 * 1024
_CLOSE = (b"connection", b"close")


class UnreadBodyGuard:
    """ASGI: `inner`, with small bodies received before it runs and `Connection: close` on an
    answer that overtakes a large one."""

    def __init__(self, inner: ASGIApp) -> None:
        self._inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length <= READ_FIRST_BYTES:
            await self._inner(scope, await _received_first(receive, length), send)
        else:
            await self._close_if_overtaken(scope, receive, send)

    async def _close_if_overtaken(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = False

        async def receive_watched() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                received = True
            return message

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and not received:
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        await self._inner(scope, receive_watched, send_closing)


def _content_length(scope: Scope) -> int | None:
    """The declared body length: 0 without one, None for a chunked body (or a malformed length,
    which the server refuses before the app sees it)."""
    length = 0
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            length = int(value) if value.isdigit() else -1
    return None if length < 0 else length


async def _received_first(receive: Receive, length: int) -> Receive:
    """Receive a body of `length` bytes now; return a `receive` that hands it out first."""
    waiting: list[Message] = []
    if length:
        while True:
            message = await receive()
            waiting.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
    waiting.reverse()

    async def replay() -> Message:
        return waiting.pop() if waiting else await receive()

    return replay
