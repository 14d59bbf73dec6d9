"""A request whose body a handler never reads never stalls the connection it came on."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import trio
import trio.testing

BODY = b'{"name": "N"}'


def _request(path: str, length: int = len(BODY)) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def _read_response(stream: trio.SocketStream) -> bytes:
    """One whole response (headers and a Content-Length body) off the stream."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += await stream.receive_some()
    return head


async def test_a_small_body_trailing_its_headers_is_awaited_and_the_connection_reused(
    node: str,
) -> None:
    # The case that used to hang the next request on the connection: the body arrives after
    # the handler (which never reads it) could have answered.
    address = urlsplit(node)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(address.hostname, address.port)
        async with stream:
            for _ in range(3):
                await stream.send_all(_request("/health"))
                await trio.testing.wait_all_tasks_blocked()
                await stream.send_all(BODY)
                head = await _read_response(stream)
                assert head.startswith(b"HTTP/1.1 200")
                assert b"connection: close" not in head.lower()


async def test_an_answer_overtaking_a_large_unread_body_says_the_connection_ends(
    node: str, api: httpx.AsyncClient
) -> None:
    address = urlsplit(node)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(address.hostname, address.port)
        async with stream:
            await stream.send_all(_request("/health", 200_000))
            head = await _read_response(stream)
            assert b"connection: close" in head.lower()
    # So a client opens a new connection for its next request instead of waiting on this one.
    with trio.fail_after(30):
        for _ in range(20):
            response = await api.request("GET", "/health", content=b"x" * 200_000)
            assert response.status_code == 200


async def test_a_complete_body_nobody_reads_keeps_the_connection_alive(node: str) -> None:
    address = urlsplit(node)
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(address.hostname, address.port)
        async with stream:
            for _ in range(50):
                await stream.send_all(_request("/health") + BODY)
                head = await _read_response(stream)
                assert head.startswith(b"HTTP/1.1 200")


async def test_requests_with_bodies_handlers_ignore_never_hang_a_reused_connection(
    api: httpx.AsyncClient,
) -> None:
    with trio.fail_after(30):
        for i in range(300):
            response = await api.request("GET", "/health", json={"name": "N" * (i % 50)})
            assert response.status_code == 200
