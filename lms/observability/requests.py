"""The node's edge as operators see it: one access line per HTTP request, a line when a
WebSocket opens and when it closes, and the per-route figures behind `lms_http_*` and
`lms_websocket_*`.

`RequestObserver` is the outermost ASGI layer, so signed media requests (answered before Quart)
are seen like the rest. What only the application knows it leaves in the ASGI scope, which
every layer shares: the URL rule's template (`track_routes`, or "/media" from the media app)
and the authenticated caller (`lms.http.wire.caller`). A line or a label never holds the raw
path: signed media URLs carry signatures and reset pages carry tokens. A path no rule matches
is counted as "unmatched" and an unknown method as "OTHER", so a scanner cannot grow the label
sets. Counting is a few dict adds and a histogram bisect per request; the collector turns
them into metric families when Prometheus scrapes.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TypeVar, cast

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from quart import Quart, request, websocket

from lms.domain.histogram import Histogram
from lms.http.asgi import ASGIApp, Message, Receive, Scope, Send
from lms.observability.logging import info_line
from lms.observability.metrics import histogram_family

# Keys this module and the application share in the ASGI scope.
ROUTE = "lms.route"
USER_ID = "lms.user_id"
REQUEST_ID = "lms.request_id"

UNMATCHED = "unmatched"
MEDIA_ROUTE = "/media"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A client's own X-Request-ID is kept (to follow a request through a proxy) when it looks like
# an id; anything else gets a new one rather than reaching the logs.
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
# The status logged when the client left before any answer started (nginx's convention).
CLIENT_CLOSED = 499
# The close code when no close was seen either way (RFC 6455: closed abnormally). A close the
# client starts arrives as this code too: Hypercorn 0.18 does not pass the client's code on
# (`websocket.disconnect` says 1006), so `closed_by` is what tells the two apart.
ABNORMAL_CLOSE = 1006


# New request ids: this process's random prefix and a count, 16 hex digits like a uuid4's first
# 16 but without its urandom call (~4 us a request); an id names a request in the logs, it
# grants nothing, so it need not be unguessable.
_PROCESS_PREFIX = secrets.token_hex(4)
_counter = itertools.count()


def request_id(scope: Scope) -> str:
    """The request's id: decided once per request (the client's X-Request-ID when it looks
    like one, else a new one) and kept in the scope, so the access line, the application's log
    lines and the X-Request-ID response header all carry the same."""
    found = scope.get(REQUEST_ID)
    if found is None:
        found = f"{_PROCESS_PREFIX}{next(_counter) & 0xFFFFFFFF:08x}"
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _CLIENT_ID.fullmatch(value):
                    found = value.decode("ascii")
                break
        scope[REQUEST_ID] = found
    return found


def track_routes(app: Quart) -> None:
    """Leave each matched request's and WebSocket's URL rule template in its scope."""

    @app.before_request
    async def note_route() -> None:
        if request.url_rule is not None:
            cast(Scope, request.scope)[ROUTE] = request.url_rule.rule

    @app.before_websocket
    async def note_endpoint() -> None:
        if websocket.url_rule is not None:
            cast(Scope, websocket.scope)[ROUTE] = websocket.url_rule.rule


class EdgeMetrics(Collector):
    """The edge's figures, counted as requests end and read when Prometheus scrapes."""

    def __init__(self) -> None:
        self.durations: defaultdict[tuple[str, str], Histogram] = defaultdict(Histogram)
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self.response_bytes: defaultdict[str, int] = defaultdict(int)
        self.websockets_open: defaultdict[str, int] = defaultdict(int)
        self.websockets_opened: defaultdict[str, int] = defaultdict(int)
        self.websocket_closes: defaultdict[tuple[str, int], int] = defaultdict(int)
        # WebSocket messages through this layer (one message may batch several protocol frames).
        self.frames_in = 0
        self.frames_out = 0

    def request(self, method: str, route: str, status: int, seconds: float, sent: int) -> None:
        self.durations[method, route].observe(seconds)
        self.requests[method, route, status] += 1
        self.response_bytes[route] += sent

    def collect(self) -> Iterable[Metric]:
        yield _family(
            CounterMetricFamily,
            "lms_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            self.requests,
        )
        yield histogram_family(
            "lms_http_request_duration_seconds",
            "From a request's arrival until its answer was sent.",
            ["method", "route"],
            [(key, histogram.snapshot()) for key, histogram in list(self.durations.items())],
        )
        yield _family(
            CounterMetricFamily,
            "lms_http_response_bytes",
            "Response body bytes sent.",
            ["route"],
            self.response_bytes,
        )
        yield _family(
            GaugeMetricFamily,
            "lms_websocket_connections",
            "WebSockets open now.",
            ["endpoint"],
            self.websockets_open,
        )
        yield _family(
            CounterMetricFamily,
            "lms_websocket_connections",
            "WebSockets accepted.",
            ["endpoint"],
            self.websockets_opened,
        )
        yield _family(
            CounterMetricFamily,
            "lms_websocket_closes",
            "WebSockets closed, by close code.",
            ["endpoint", "code"],
            self.websocket_closes,
        )
        frames = CounterMetricFamily(
            "lms_websocket_frames", "WebSocket messages received and sent.", labels=["direction"]
        )
        frames.add_metric(["in"], self.frames_in)
        frames.add_metric(["out"], self.frames_out)
        yield frames


Key = TypeVar("Key")


def _family(
    kind: type[CounterMetricFamily | GaugeMetricFamily],
    name: str,
    documentation: str,
    labels: list[str],
    counts: Mapping[Key, int],
) -> Metric:
    """A `kind` family with one sample per key of `counts`: a key is a label's value or a tuple
    of them, in the order of `labels`."""
    family = kind(name, documentation, labels=labels)
    for key, count in list(counts.items()):
        values = key if isinstance(key, tuple) else (key,)
        family.add_metric([str(value) for value in values], count)
    return family


class RequestObserver:
    """ASGI: `inner`, with each HTTP request logged and counted and each WebSocket's opening
    and close (code and side) logged and counted. With both off, it only passes calls on."""

    def __init__(self, inner: ASGIApp, *, access_log: bool, metrics: bool) -> None:
        self._inner = inner
        self._access_log = access_log
        self._counting = metrics
        self.metrics = EdgeMetrics()
        # Chosen once (logging is configured before a node is built): a line of its own in
        # JSON, which would otherwise be a good part of a cheap request's cost.
        self._info = info_line(__name__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if not (self._access_log or self._counting) or kind == "lifespan":
            await self._inner(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)
        else:
            await self._websocket(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = CLIENT_CLOSED
        sent = 0

        async def observed_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        request_id(scope)
        try:
            await self._inner(scope, receive, observed_send)
        except Exception:
            if status == CLIENT_CLOSED:
                status = 500  # the server answers with it
            raise
        finally:
            self._answered(scope, scope["method"], status, started, sent)

    def _answered(self, scope: Scope, method: str, status: int, started: float, sent: int) -> None:
        seconds = time.perf_counter() - started
        route = scope.get(ROUTE, UNMATCHED)
        method = method if method in _METHODS else "OTHER"
        if self._counting:
            self.metrics.request(method, route, status, seconds, sent)
        if self._access_log:
            self._info(
                "request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 3),
                user_id=scope.get(USER_ID),
                request_id=scope[REQUEST_ID],
                bytes=sent,
            )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        figures = self.metrics
        accepted = False
        refused_with = 403  # what the server answers a close before the accept with
        code: int | None = None
        closed_by = "server"

        async def observed_receive() -> Message:
            nonlocal code, closed_by
            message = await receive()
            if message["type"] == "websocket.receive":
                figures.frames_in += 1
            elif message["type"] == "websocket.disconnect" and code is None:
                code, closed_by = message.get("code", 1005), "client"
            return message

        async def observed_send(message: Message) -> None:
            nonlocal accepted, code, refused_with
            if message["type"] == "websocket.send":
                figures.frames_out += 1
            elif message["type"] == "websocket.accept":
                accepted = True
                self._opened(scope)
            elif message["type"] == "websocket.close" and code is None:
                code = message.get("code", 1000)
            elif message["type"] == "websocket.http.response.start":
                refused_with = message["status"]
            await send(message)

        request_id(scope)
        try:
            await self._inner(scope, observed_receive, observed_send)
        finally:
            if accepted:
                self._closed(scope, code or ABNORMAL_CLOSE, closed_by, started)
            else:
                # Refused before the handshake completed: an HTTP answer like any other.
                self._answered(scope, "GET", refused_with, started, 0)

    def _opened(self, scope: Scope) -> None:
        endpoint = scope.get(ROUTE, UNMATCHED)
        if self._counting:
            self.metrics.websockets_open[endpoint] += 1
            self.metrics.websockets_opened[endpoint] += 1
        if self._access_log:
            self._info(
                "websocket_connected",
                endpoint=endpoint,
                user_id=scope.get(USER_ID),
                request_id=scope[REQUEST_ID],
            )

    def _closed(self, scope: Scope, code: int, closed_by: str, started: float) -> None:
        endpoint = scope.get(ROUTE, UNMATCHED)
        if self._counting:
            self.metrics.websockets_open[endpoint] -= 1
            self.metrics.websocket_closes[endpoint, code] += 1
        if self._access_log:
            self._info(
                "websocket_closed",
                endpoint=endpoint,
                code=code,
                closed_by=closed_by,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                user_id=scope.get(USER_ID),
                request_id=scope[REQUEST_ID],
            )
