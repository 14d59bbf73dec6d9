"""Sending a plan's bytes: the right bytes in large chunks, and the file closed the moment the
consumer stops, in-process and over real HTTP (Hypercorn's trio worker, as the node runs it)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import request
from quart_trio import QuartTrio

from lms.domain.file_response import FileFacts, FilePlan, RequestHeaders, plan_file_response
from lms.http.file_body import (
    CHUNK,
    FileChanged,
    asgi_send_plan,
    quart_response,
    send_plan,
)
from tests.polling import eventually

SIZE = 8 * 1024 * 1024 + 123


@pytest.fixture
def content() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def media(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    return path


def plan_for(path: Path, headers: RequestHeaders | None = None, method: str = "GET") -> FilePlan:
    info = path.stat()
    return plan_file_response(
        method,
        headers or {},
        FileFacts(info.st_size, info.st_mtime_ns),
        content_type="video/mp4",
        cache_control="no-cache",
    )


def open_fds(path: Path) -> int:
    """How many descriptors of this process are open on `path`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor, closed since
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


async def test_a_whole_file_is_sent_in_large_chunks_the_last_one_flagged(
    media: Path, content: bytes
) -> None:
    sent: list[tuple[bytes, bool]] = []

    async def collect(chunk: bytes, more: bool) -> None:
        sent.append((chunk, more))

    await send_plan(media, plan_for(media), collect)
    assert b"".join(chunk for chunk, _ in sent) == content
    assert [more for _, more in sent] == [True] * (len(sent) - 1) + [False]
    assert all(len(chunk) == CHUNK for chunk, _ in sent[:-1])
    assert open_fds(media) == 0


async def test_multipart_ranges_send_their_delimiters_and_slices(
    media: Path, content: bytes
) -> None:
    plan = plan_for(media, {"range": "bytes=0-9,1000000-1300000,-5"})
    sent: list[bytes] = []

    async def collect(chunk: bytes, more: bool) -> None:
        sent.append(chunk)

    await send_plan(media, plan, collect)
    expected = b"".join(
        part if isinstance(part, bytes) else content[part.offset : part.offset + part.length]
        for part in plan.body
    )
    assert b"".join(sent) == expected
    assert len(expected) == plan.content_length


async def test_an_empty_body_still_ends_the_response(media: Path) -> None:
    sent: list[tuple[bytes, bool]] = []

    async def collect(chunk: bytes, more: bool) -> None:
        sent.append((chunk, more))

    await send_plan(media, plan_for(media, {"range": "bytes=0-9"}, method="HEAD"), collect)
    assert sent == [(b"", False)]


async def test_a_consumer_that_stops_closes_the_file_at_once(media: Path) -> None:
    opened_while_sending: list[int] = []

    async def stops_after_the_first_chunk(chunk: bytes, more: bool) -> None:
        opened_while_sending.append(open_fds(media))
        raise BrokenPipeError

    with pytest.raises(BrokenPipeError):
        await send_plan(media, plan_for(media), stops_after_the_first_chunk)
    assert (opened_while_sending, open_fds(media)) == ([1], 0)

    async def blocks(chunk: bytes, more: bool) -> None:
        await trio.sleep_forever()

    with trio.move_on_after(0.05) as cancelled:
        await send_plan(media, plan_for(media), blocks)
    assert cancelled.cancelled_caught
    assert open_fds(media) == 0


async def test_a_file_rewritten_after_its_plan_is_not_sent_as_that_plan(media: Path) -> None:
    plan = plan_for(media)
    await trio.Path(media).write_bytes(b"shorter")

    async def collect(chunk: bytes, more: bool) -> None:
        raise AssertionError("no byte of another version may be sent")

    with pytest.raises(FileChanged):
        await send_plan(media, plan, collect)
    assert open_fds(media) == 0


# --- over real HTTP ---------------------------------------------------------------------------


def quart_app(media: Path) -> QuartTrio:
    app = QuartTrio(__name__)

    @app.get("/clip.mp4")
    async def clip() -> Any:
        return quart_response(media, plan_for(media, request.headers))

    return app


def raw_app(media: Path) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        plan = plan_for(media, headers)
        start = [(name.lower().encode(), value.encode()) for name, value in plan.headers]
        await send({"type": "http.response.start", "status": plan.status, "headers": start})
        await asgi_send_plan(media, plan, receive, send)

    return app


@pytest.fixture(params=["quart", "asgi"])
async def server(
    request: pytest.FixtureRequest, media: Path, nursery: trio.Nursery
) -> AsyncIterator[str]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    stopped = trio.Event()
    app = quart_app(media) if request.param == "quart" else raw_app(media)
    [url] = await nursery.start(
        lambda task_status: serve(
            app, config, shutdown_trigger=stopped.wait, task_status=task_status
        )
    )  # type: ignore[arg-type]
    yield url
    stopped.set()


async def test_the_bytes_served_over_http_are_the_files(
    server: str, media: Path, content: bytes
) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        whole = await client.get("/clip.mp4")
        ranged = await client.get("/clip.mp4", headers={"Range": "bytes=100-65635"})
    assert (whole.status_code, whole.content) == (200, content)
    assert (ranged.status_code, ranged.content) == (206, content[100:65636])
    assert open_fds(media) == 0


async def test_a_client_that_disconnects_mid_body_frees_its_file_at_once(
    server: str, media: Path
) -> None:
    # Far more than the socket buffers hold, so the server is mid-body when the client leaves.
    os.truncate(media, 1 << 40)
    host, port = server.removeprefix("http://").split(":")
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        await stream.send_all(b"GET /clip.mp4 HTTP/1.1\r\nHost: test\r\n\r\n")
        received = b""
        while len(received.partition(b"\r\n\r\n")[2]) < CHUNK:
            received += await stream.receive_some(CHUNK)
        assert received.startswith(b"HTTP/1.1 200")
        # The server has the file open while the rest of the body waits for this slow reader.
        assert open_fds(media) == 1
    await eventually(lambda: trio.to_thread.run_sync(open_fds, media), lambda n: n == 0, within=5)
