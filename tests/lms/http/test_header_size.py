"""A request head larger than the node reads (lms/node.py MAX_HEADER_BYTES) is answered 431 and
its connection closed, over a raw socket as an abusive client would send it."""

from __future__ import annotations

import contextlib

import httpx
import trio

from lms.node import MAX_HEADER_BYTES

CLOSE_DEADLINE = 10.0


async def exchange(node: str, head: bytes) -> bytes:
    """Send `head` and return everything the node answers up to closing the connection
    (TooSlowError if it does not close it)."""
    host, port = node.removeprefix("http://").split(":")
    answer = b""
    async with await trio.open_tcp_stream(host, int(port)) as stream:

        async def send() -> None:
            # The node may stop reading and close mid-head: its answer is what counts.
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(head)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            with trio.fail_after(CLOSE_DEADLINE):
                while chunk := await stream.receive_some():
                    answer += chunk
    return answer


def padding(size: int) -> dict[str, str]:
    """Headers of about `size` bytes."""
    return {f"X-Pad-{n}": "a" * 990 for n in range(size // 1000)}


async def test_a_request_with_100_kb_of_headers_gets_431_and_is_closed(node: str) -> None:
    lines = "".join(f"{name}: {value}\r\n" for name, value in padding(100_000).items())
    answer = await exchange(node, f"GET /health HTTP/1.1\r\nHost: lms\r\n{lines}\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_headers_under_the_limit_are_served(api: httpx.AsyncClient) -> None:
    response = await api.get("/health", headers=padding(MAX_HEADER_BYTES - 2_000))
    assert response.status_code == 200
