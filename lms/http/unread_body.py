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

Slow bodies: Hypercorn cuts a request whose head trickles in (its keep-alive timeout, 5 s) but
has no deadline once the head is in, so a client that declares a body and sends it a byte at a
time, or never, held its socket as long as it liked (Quart's own body timeout answered 408 and
left the connection open). Here every body has `body_timeout` seconds: a small one to arrive
whole (it is at most 64 KiB), a streamed one between any two of its pieces (as nginx's
`client_body_timeout`: an upload may take hours, but not stall). Past it the app is told the
client left (an upload keeps what arrived), the client is answered 408 if nothing was answered
yet, and the connection is closed: the answer says `Connection: close`, and Hypercorn closes a
connection whose request did not end.
"""

from __future__ import annotations

import math

import trio

from lms.http.asgi import ASGIApp, Message, Receive, Scope, Send
from lms.http.error_answer import ErrorAnswer

READ_FIRST_BYTES = 64 * 1024
_CLOSE = (b"connection", b"close")
_GONE: Message = {"type": "http.disconnect"}


class UnreadBodyGuard:
    """ASGI: `inner`, with small bodies received before it runs, `Connection: close` on an
    answer that overtakes a large one, and a 408 and a closed connection for a body that does
    not arrive within `body_timeout` seconds (see the module's docstring)."""

    def __init__(self, inner: ASGIApp, *, body_timeout: float) -> None:
        self._inner = inner
        self._body_timeout = body_timeout
        self._too_slow = ErrorAnswer(
            408,
            "body_timeout",
            f"the request body did not arrive within {body_timeout:g} s",
            _CLOSE,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length <= READ_FIRST_BYTES:
            replay = None
            with trio.move_on_after(self._body_timeout):
                replay = await _received_first(receive, length)
            if replay is None:
                await self._too_slow.send(send)
            else:
                await self._inner(scope, replay, send)
        else:
            await self._close_if_overtaken(scope, receive, send)

    async def _close_if_overtaken(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = timed_out = answered = False

        async def receive_watched() -> Message:
            nonlocal received, timed_out
            if timed_out:
                return _GONE
            # Once the body is in, the app only listens for the client leaving: no deadline.
            with trio.move_on_after(math.inf if received else self._body_timeout):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    received = True
                return message
            timed_out = True
            return _GONE  # to the app, as if the client had left: an upload keeps what came

        async def send_closing(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                if not received:
                    message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        await self._inner(scope, receive_watched, send_closing)
        if timed_out and not answered:
            await self._too_slow.send(send)


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
