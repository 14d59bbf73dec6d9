"""How a node stops. On SIGTERM, and when a core actor is given up on, it drains: it stops taking
connections, finishes the requests in flight, then exits (non-zero when it failed)."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from tests.databases import open_database
from tests.e2e.nodes import SECRET, STOP_DEADLINE, NodeProcess, node_env, start_node
from tests.job_queue_loss import assert_stopped_for_the_lost_queue, lose_the_job_queue
from tests.polling import eventually

pytestmark = pytest.mark.e2e

# Long enough for the pool's crash loop (a few seconds) to be given up on.
DRAIN_DEADLINE = 60.0
BODY = json.dumps({"email": "late@school.org", "password": "late-password", "name": "Late"})


async def takes_connections(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    try:
        stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    except OSError:
        return False
    await stream.aclose()
    return True


async def drain_during_a_request(
    node: NodeProcess, stop: Callable[[], Awaitable[None]]
) -> tuple[httpx.Response, int]:
    """Start a sign-up whose body arrives in two parts, `stop` the node between them, and
    return the sign-up's response and the node's exit code."""
    first_part_sent, send_the_rest = trio.Event(), trio.Event()
    data = BODY.encode()

    async def in_two_parts() -> AsyncIterator[bytes]:
        yield data[:20]
        first_part_sent.set()  # the client asks for more once the first part is on the wire
        await send_the_rest.wait()
        yield data[20:]

    responses: list[httpx.Response] = []

    async def sign_up(client: httpx.AsyncClient) -> None:
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        responses.append(
            await client.post("/api/v1/auth/register", content=in_two_parts(), headers=headers)
        )

    async with (
        httpx.AsyncClient(base_url=node.url, timeout=DRAIN_DEADLINE) as client,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(sign_up, client)
        await first_part_sent.wait()
        await stop()
        await eventually(lambda: takes_connections(node.url), lambda taken: not taken)
        send_the_rest.set()
    with trio.fail_after(STOP_DEADLINE):
        code = await node.process.wait()
    return responses[0], code


@pytest.fixture
async def node(database_url: str, tmp_path: Path) -> AsyncIterator[NodeProcess]:
    env = node_env(
        tmp_path,
        LMS_DATABASE_URL=database_url,
        LMS_SECRET_KEY=SECRET,
        LMS_TRANSCODE_WORKERS="1",
    )
    node = await start_node(env, tmp_path / "node.log")
    try:
        yield node
    finally:
        if node.process.returncode is None:
            node.process.kill()
            await node.process.wait()


async def test_sigterm_lets_the_requests_in_flight_finish_then_exits_cleanly(
    node: NodeProcess,
) -> None:
    async def sigterm() -> None:
        node.process.send_signal(signal.SIGTERM)

    response, code = await drain_during_a_request(node, sigterm)
    assert response.status_code == 202, response.text
    assert code == 0, node.log()


async def test_a_core_actor_given_up_on_drains_the_node_which_exits_non_zero(
    node: NodeProcess, database_url: str
) -> None:
    async def break_the_transcoder_pool() -> None:
        async with open_database(database_url) as db:
            await lose_the_job_queue(db)

    with trio.fail_after(DRAIN_DEADLINE):
        response, code = await drain_during_a_request(node, break_the_transcoder_pool)
    assert response.status_code == 202, response.text
    assert code == 1, node.log()

    assert_stopped_for_the_lost_queue(node.log(), "serve")
