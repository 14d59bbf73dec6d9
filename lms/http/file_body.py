"""The one shell that sends a `FilePlan`'s body (`lms/domain/file_response.py`), for the signed
media app (raw ASGI, `send_plan`) and the Bearer routes (Quart, `quart_response`) alike.

The file is opened at the first chunk that reads it and closed by the last one, or at once when
the consumer stops (a client that disconnects, a cancelled send): its descriptor never waits for
the garbage collector. `FileBody` is a plain class rather than an async generator for that reason.

Reads are `preadv(RWF_NOWAIT)` on the trio thread: bytes in the page cache (a player's ranges
nearly always are) come back in ~12 us per 64 KiB here, where a worker-thread round trip costs
~65 us; only bytes that would wait for the disk go to a thread, so no disk seek stalls the loop.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
from quart import Response
from werkzeug.datastructures import Headers

from lms.domain.file_response import FileFacts, FilePlan, FileSlice
from lms.http import asgi

CHUNK = 256 * 1024

Send = Callable[[bytes, bool], Awaitable[None]]
"""Sends one chunk of the body; the flag says whether more follow."""


class FileChanged(OSError):
    """The file is not the version the plan was made for (rewritten, truncated, replaced)."""


class FileBody:
    """A plan's body as chunks of at most `chunk` bytes, an async iterator.

    `remaining` is how many bytes are still to come, so a sender knows the last chunk when it
    has it. `close()` is synchronous and idempotent (safe in a `finally` while cancelled);
    `aclose()` is the same for frameworks that close what they iterate. Raises `FileChanged`
    if the file opened is not the one the plan describes, or ends early.
    """

    def __init__(self, path: Path, plan: FilePlan, chunk: int = CHUNK) -> None:
        self._path = path
        self._facts = plan.facts
        self._parts = deque(plan.body)
        self._chunk = chunk
        self.remaining = plan.content_length
        self._fd: int | None = None
        self._buffer: bytearray | None = None

    def __aiter__(self) -> FileBody:
        return self

    async def __anext__(self) -> bytes:
        while self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                self._parts.popleft()
                data = part
            elif part.length == 0:
                self._parts.popleft()
                continue
            else:
                data = await self._read(part)
            self.remaining -= len(data)
            if self.remaining == 0:
                self.close()  # before the last chunk leaves: a client that has it all owns no fd
            if data:
                return data
        self.close()
        raise StopAsyncIteration

    async def _read(self, part: FileSlice) -> bytes:
        fd = self._open()
        want = min(part.length, self._chunk)
        if self._buffer is None or len(self._buffer) < want:
            self._buffer = bytearray(want)
        view = memoryview(self._buffer)[:want]
        got = _read_cached(fd, view, part.offset)
        if got == 0:
            got = await trio.to_thread.run_sync(os.preadv, fd, [view], part.offset)
        if got == 0:
            raise FileChanged(f"{self._path} ended at {part.offset} while being sent")
        rest = FileSlice(part.offset + got, part.length - got)
        if rest.length == 0:
            self._parts.popleft()
        else:
            self._parts[0] = rest
        return bytes(view[:got])

    def _open(self) -> int:
        if self._fd is None:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            info = os.fstat(fd)
            if FileFacts(info.st_size, info.st_mtime_ns) != self._facts:
                os.close(fd)
                raise FileChanged(f"{self._path} changed between its stat and its open")
            self._fd = fd
        return self._fd

    def close(self) -> None:
        fd, self._fd = self._fd, None
        self._parts.clear()
        if fd is not None:
            os.close(fd)

    async def aclose(self) -> None:
        self.close()


def _read_cached(fd: int, view: memoryview, offset: int) -> int:
    """Bytes read from the page cache alone: 0 when they would wait for the disk (or the file
    system cannot say, or the file ends)."""
    try:
        return os.preadv(fd, [view], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        return 0
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            return 0
        raise


async def send_plan(path: Path, plan: FilePlan, send: Send) -> None:
    """Send the plan's body through `send`, the last chunk flagged as such (an empty one if the
    body is empty). The file is closed before this returns or raises, however it ends."""
    body = FileBody(path, plan)
    try:
        if body.remaining == 0:
            await send(b"", False)
        async for chunk in body:
            await send(chunk, body.remaining > 0)
    finally:
        body.close()


def asgi_sender(send: asgi.Send) -> Send:
    """A `Send` writing ASGI `http.response.body` messages through an ASGI `send`."""

    async def send_body(chunk: bytes, more: bool) -> None:
        await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return send_body


def quart_response(path: Path, plan: FilePlan) -> Response:
    """A Quart response sending the plan; Quart closes the body when it stops iterating."""
    response = Response(FileBody(path, plan), status=plan.status, headers=Headers(plan.headers))
    # A slow player on a long video takes as long as it takes.
    response.timeout = None
    return response


async def asgi_send_plan(
    path: Path,
    plan: FilePlan,
    receive: asgi.Receive,
    send: asgi.Send,
) -> None:
    """Send the plan's body as ASGI `http.response.body` messages (after the caller's
    `http.response.start`), stopping and closing the file as soon as the client disconnects.

    Hypercorn drops what an app sends after a disconnect without raising, so without watching
    `receive` a long body would be read to its end for nobody. A body of one chunk (a player's
    range) is over before the watch would matter, and skips its cost."""
    send_body = asgi_sender(send)
    if plan.content_length <= CHUNK:
        await send_plan(path, plan, send_body)
        return
    async with trio.open_nursery() as nursery:

        async def stop_on_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(stop_on_disconnect)
        await send_plan(path, plan, send_body)
        nursery.cancel_scope.cancel()
