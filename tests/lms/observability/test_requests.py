"""The edge's access lines and figures, through a real Quart-Trio app on Hypercorn on loopback:
each request is one line naming its URL rule (never its path), unknown paths and methods share
one label, and a WebSocket's close is logged and counted with its code and the side that
closed it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypercorn.config
import hypercorn.trio
import pytest
import structlog
import trio
from prometheus_client.parser import text_string_to_metric_families
from quart import websocket
from quart_trio import QuartTrio
from trio_websocket import ConnectionClosed, open_websocket_url

from lms.observability.metrics import NodeMetrics
from lms.observability.requests import RequestObserver, track_routes
from tests.polling import eventually

BODY = b'{"status": "ok"}'
ITEM = "/items/<int:item_id>"
ROOM = "/rooms/<int:room_id>"
GOING_AWAY = 4001


def small_app() -> QuartTrio:
    app = QuartTrio("edge-test")
    track_routes(app)

    @app.get(ITEM)
    async def item(item_id: int) -> tuple[bytes, int]:
        return BODY, 200 if item_id < 100 else 404

    @app.websocket(ROOM)
    async def room(room_id: int) -> None:
        await websocket.accept()
        while (message := await websocket.receive()) != "bye":
            await websocket.send(message)
        await websocket.close(GOING_AWAY)

    return app


@dataclass
class Edge:
    url: str
    metrics: NodeMetrics
    events: list[dict[str, Any]]

    def lines(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    async def first_lines(self, event: str, n: int) -> list[dict[str, Any]]:
        """The first `n` lines of `event`: a line is written once the answer has gone, so the
        client may see its answer first."""

        async def lines() -> list[dict[str, Any]]:
            return self.lines(event)

        return (await eventually(lines, lambda found: len(found) >= n, within=10))[:n]

    async def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The exposition's samples called `name`, by their sorted labels."""
        text = (await self.metrics.exposition()).decode()
        return {
            tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name
        }


async def serve_observed(
    nursery: trio.Nursery, *, access_log: bool = True, metrics: bool = True
) -> Edge:
    observer = RequestObserver(small_app(), access_log=access_log, metrics=metrics)
    registry = NodeMetrics("edge-test")
    registry.add(observer.metrics)
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    binds = await nursery.start(hypercorn.trio.serve, observer, config)
    return Edge(binds[0], registry, [])


@pytest.fixture
async def edge(nursery: trio.Nursery) -> AsyncIterator[Edge]:
    with structlog.testing.capture_logs() as events:
        served = await serve_observed(nursery)
        served.events = events
        yield served


async def test_each_request_is_one_line_naming_its_route_template_status_and_bytes(
    edge: Edge,
) -> None:
    async with httpx.AsyncClient(base_url=edge.url) as client:
        assert (await client.get("/items/7", headers={"X-Request-ID": "trace-7.a"})).is_success
        assert (await client.get("/items/123")).status_code == 404
        assert (await client.get("/items/8", headers={"X-Request-ID": "a b\tc"})).is_success

    first, second, third = await edge.first_lines("request", 3)
    assert {k: v for k, v in first.items() if k != "duration_ms"} == {
        "event": "request",
        "log_level": "info",
        "method": "GET",
        "route": ITEM,
        "status": 200,
        "user_id": None,
        "request_id": "trace-7.a",  # the client's own id, to follow it through a proxy
        "bytes": len(BODY),
    }
    assert first["duration_ms"] > 0
    assert (second["route"], second["status"]) == (ITEM, 404)
    # An id that does not look like one never reaches the log.
    assert len(third["request_id"]) == 16
    assert third["request_id"] != second["request_id"]
    requests = await edge.samples("lms_http_requests_total")
    assert requests == {
        (("method", "GET"), ("route", ITEM), ("status", "200")): 2.0,
        (("method", "GET"), ("route", ITEM), ("status", "404")): 1.0,
    }
    durations = await edge.samples("lms_http_request_duration_seconds_count")
    assert durations == {(("method", "GET"), ("route", ITEM)): 3.0}
    assert await edge.samples("lms_http_response_bytes_total") == {
        (("route", ITEM),): 3.0 * len(BODY)
    }


async def test_a_flood_of_unknown_paths_and_methods_is_counted_under_one_label(
    edge: Edge,
) -> None:
    async with httpx.AsyncClient(base_url=edge.url) as client:
        for _ in range(30):
            response = await client.get(f"/{uuid.uuid4().hex}/.env?token={uuid.uuid4().hex}")
            assert response.status_code == 404
        assert (await client.request("BREW", "/items/1")).status_code == 405

    await edge.first_lines("request", 31)
    requests = await edge.samples("lms_http_requests_total")
    assert requests == {
        (("method", "GET"), ("route", "unmatched"), ("status", "404")): 30.0,
        (("method", "OTHER"), ("route", "unmatched"), ("status", "405")): 1.0,
    }
    assert {line["route"] for line in edge.lines("request")} == {"unmatched"}


async def test_a_websockets_close_is_logged_and_counted_with_its_code_and_side(
    edge: Edge,
) -> None:
    url = edge.url.replace("http://", "ws://")
    async with open_websocket_url(f"{url}/rooms/1") as ws:
        await ws.send_message("hello")
        assert await ws.get_message() == "hello"
        await ws.send_message("bye")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
        assert closed.value.reason.code == GOING_AWAY
    async with open_websocket_url(f"{url}/rooms/2") as ws:
        assert (await edge.samples("lms_websocket_connections")) == {(("endpoint", ROOM),): 1.0}
        await ws.aclose(1000)

    connected = await edge.first_lines("websocket_connected", 2)
    assert [line["endpoint"] for line in connected] == [ROOM, ROOM]
    by_server, by_client = await edge.first_lines("websocket_closed", 2)
    assert (by_server["code"], by_server["closed_by"]) == (GOING_AWAY, "server")
    # Hypercorn 0.18 tells the application 1006 for any close the client starts, whatever
    # code the client sent: the side is what the edge can say.
    assert (by_client["code"], by_client["closed_by"]) == (1006, "client")
    assert by_server["request_id"] == connected[0]["request_id"]
    assert (await edge.samples("lms_websocket_connections")) == {(("endpoint", ROOM),): 0.0}
    assert (await edge.samples("lms_websocket_connections_total")) == {(("endpoint", ROOM),): 2.0}
    assert (await edge.samples("lms_websocket_closes_total")) == {
        (("code", str(GOING_AWAY)), ("endpoint", ROOM)): 1.0,
        (("code", "1006"), ("endpoint", ROOM)): 1.0,
    }
    frames = await edge.samples("lms_websocket_frames_total")
    assert frames == {(("direction", "in"),): 2.0, (("direction", "out"),): 1.0}


async def test_a_websocket_refused_before_its_handshake_is_an_unmatched_request(
    edge: Edge,
) -> None:
    url = edge.url.replace("http://", "ws://")
    with pytest.raises(Exception, match="404"):
        async with open_websocket_url(f"{url}/nowhere/{uuid.uuid4().hex}"):
            pass
    [line] = await edge.first_lines("request", 1)
    assert (line["route"], line["status"]) == ("unmatched", 404)
    assert edge.lines("websocket_connected") == []


async def test_the_access_log_can_be_off_with_the_figures_on(nursery: trio.Nursery) -> None:
    with structlog.testing.capture_logs() as events:
        edge = await serve_observed(nursery, access_log=False, metrics=True)
        async with httpx.AsyncClient(base_url=edge.url) as client:
            assert (await client.get("/items/1")).is_success
        counted = await eventually(
            lambda: edge.samples("lms_http_requests_total"), lambda found: len(found) == 1
        )
    # A line would have been written in the same step as the count.
    assert list(counted.values()) == [1.0]
    assert events == []


async def test_the_figures_can_be_off_with_the_access_log_on(nursery: trio.Nursery) -> None:
    with structlog.testing.capture_logs() as events:
        edge = await serve_observed(nursery, access_log=True, metrics=False)
        edge.events = events
        async with httpx.AsyncClient(base_url=edge.url) as client:
            assert (await client.get("/items/1")).is_success
        await edge.first_lines("request", 1)
    # The count would have been taken in the same step as the line, before it.
    assert await edge.samples("lms_http_requests_total") == {}
