"""A real node's access log, as an operator's log shipper reads it (JSON lines on stderr): one
`request` line per request naming the route's template, the caller and the request id the
client saw; signed media as "/media" with no signature; WebSockets' opening and close."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from lms.domain.media_urls import MediaUrls, derived_key
from tests.e2e.nodes import SECRET, NodeProcess, log_events, node_env, start_node
from tests.live_client import NOTIFICATIONS, live_socket, ws_url
from tests.polling import eventually

pytestmark = pytest.mark.e2e

EMAIL = "ada@example.org"
PASSWORD = "access-log-password-Qw8Zt"
POLICY_VIOLATION = 1008


def lines(node: NodeProcess, event: str) -> list[dict[str, Any]]:
    return [e for e in log_events(node.log()) if e["event"] == event]


async def logged(node: NodeProcess, event: str, n: int) -> list[dict[str, Any]]:
    """The node's first `n` lines of `event` (a line is written once its answer has gone)."""

    async def found() -> list[dict[str, Any]]:
        return lines(node, event)

    return (await eventually(found, lambda found: len(found) >= n, within=10))[:n]


async def test_each_request_is_logged_by_route_caller_and_id_and_media_without_its_signature(
    database_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = node_env(
        data, LMS_DATABASE_URL=database_url, LMS_SECRET_KEY=SECRET, LMS_TRANSCODE_WORKERS="0"
    )
    node = await start_node(env, tmp_path / "node.log")
    try:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as api:
            registered = await api.post(
                "/api/v1/auth/register", json={"email": EMAIL, "password": PASSWORD, "name": "A"}
            )
            assert registered.status_code == 202, registered.text
            login = await api.post(
                "/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}
            )
            token = login.json()["access_token"]
            bearer = {"Authorization": f"Bearer {token}"}
            me = await api.get("/api/v1/users/me", headers={**bearer, "X-Request-ID": "trace-42"})
            user_id = me.json()["id"]
            assert me.headers["X-Request-ID"] == "trace-42"
            missing = await api.get("/api/v1/courses/987654", headers=bearer)
            assert missing.status_code == 404

            fileset = f"videos/{user_id}/{uuid.uuid4()}"
            (data / "media" / fileset).mkdir(parents=True)
            (data / "media" / fileset / "720p.mp4").write_bytes(b"\0" * 1000)
            urls = MediaUrls((derived_key(SECRET),), ttl=3600)
            media_url = urls.fileset(fileset, urls.expiry(time.time())) + "/720p.mp4"
            assert (await api.get(media_url)).status_code == 200

        signature = media_url.split("/")[3]  # /media/<key id>/<signature>/...
        requests = await logged(node, "request", 5)
        by_route = {(line["route"], line["status"]): line for line in requests}
        assert by_route["/api/v1/users/me", 200] | {"duration_ms": 0} == {
            "event": "request",
            "level": "info",
            "logger": by_route["/api/v1/users/me", 200]["logger"],
            "timestamp": by_route["/api/v1/users/me", 200]["timestamp"],
            "method": "GET",
            "route": "/api/v1/users/me",
            "status": 200,
            "duration_ms": 0,
            "user_id": user_id,
            "request_id": "trace-42",
            "bytes": len(me.content),
        }
        assert by_route["/api/v1/courses/<int:course_id>", 404]["user_id"] == user_id
        assert by_route["/api/v1/auth/register", 202]["user_id"] is None
        media = by_route["/media", 200]
        assert (media["method"], media["bytes"]) == ("GET", 1000)
        for line in requests:
            assert signature not in str(line)
            assert "path" not in line

        # A socket the client closes, and one the server closes for a bad auth frame.
        async with live_socket(node.url, NOTIFICATIONS, token):
            pass
        async with open_websocket_url(ws_url(node.url, NOTIFICATIONS)) as ws:
            await ws.send_message('{"type": "auth", "token": "not-a-token"}')
            with trio.fail_after(10):
                assert json.loads(await ws.get_message())["type"] == "error"
                with pytest.raises(ConnectionClosed):
                    await ws.get_message()

        opened = await logged(node, "websocket_connected", 2)
        assert {line["endpoint"] for line in opened} == {NOTIFICATIONS}
        by_client, by_server = await logged(node, "websocket_closed", 2)
        assert (by_client["closed_by"], by_server["closed_by"]) == ("client", "server")
        assert by_server["code"] == POLICY_VIOLATION
        # The socket's own lines carry the same request id: its user is found through it.
        [admitted] = await logged(node, "ws_closed", 1)
        assert (admitted["request_id"], admitted["user_id"]) == (
            by_client["request_id"],
            user_id,
        )
    finally:
        await node.stop()
