"""The node's signed media path: a small ASGI app in front of Quart.

A request for `/media/...` is answered here, and everything else (HTTP, WebSocket, lifespan) is
passed to the wrapped app untouched. A media request costs a signature check
(`lms/domain/media_urls.py`), one stat and the bytes: no database read, no token, no router, no
framework. Production puts nginx in front, which verifies the same signature and serves the same
paths from the volume itself (deploy/nginx/lms.conf); this is the path for a node on its own, and
the same answers nginx gives (403 for a bad signature, 410 once expired, 404, 405).

The stat runs on the trio thread: ~4 us here where a worker-thread round trip costs ~65 us, and a
media volume is a local disk or its page cache. Ranges, conditionals and HEAD are planned by
`lms/domain/file_response.py` and the body is sent by `lms/http/file_body.py`, which closes the
file at once when the client goes away.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from lms.config import Settings
from lms.domain.file_response import FileFacts, plan_file_response
from lms.domain.media_types import content_type
from lms.domain.media_urls import PREFIX, MediaFile, Refused, key_map, verify
from lms.http.asgi import ASGIApp, Receive, Scope, Send
from lms.http.error_answer import ErrorAnswer
from lms.http.file_body import FileChanged, asgi_send_plan
from lms.observability.requests import MEDIA_ROUTE, ROUTE

log = structlog.get_logger()

# A request body nobody reads can stall the next request on a keep-alive connection (STACK.md):
# read and drop up to this much; past it, answer and let the server close the connection.
MAX_DISCARDED_BODY = 64 * 1024


_REFUSED = {
    Refused.FORBIDDEN: ErrorAnswer(
        403, Refused.FORBIDDEN.value, "this media URL is not validly signed; ask for the manifest"
    ),
    Refused.EXPIRED: ErrorAnswer(
        410, Refused.EXPIRED.value, "this media URL has expired; ask for the manifest again"
    ),
}
_NOT_FOUND = ErrorAnswer(404, "not_found", "no such file (yet: a running job writes as it goes)")
_NOT_ALLOWED = ErrorAnswer(
    405, "method_not_allowed", "media files are read with GET or HEAD", (b"allow", b"GET, HEAD")
)


class MediaApp:
    """ASGI: signed `/media/...` requests answered from `media_dir`; the rest go to `inner`."""

    def __init__(
        self,
        inner: ASGIApp,
        media_dir: Path,
        keys: Mapping[str, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._media_dir = media_dir
        self._keys = dict(keys)
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self._inner(scope, receive, send)
            return
        scope[ROUTE] = MEDIA_ROUTE  # never the path: it carries the signature
        await _discard_body(scope, receive)
        if scope["method"] not in ("GET", "HEAD"):
            await _NOT_ALLOWED.send(send)
            return
        found = verify(scope["path"], self._keys, self._clock())
        if isinstance(found, Refused):
            await _REFUSED[found].send(send)
            return
        await self._serve(found, scope, receive, send)

    async def _serve(self, found: MediaFile, scope: Scope, receive: Receive, send: Send) -> None:
        path = self._media_dir / found.path
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            await _NOT_FOUND.send(send)
            return
        plan = plan_file_response(
            scope["method"],
            _headers(scope),
            FileFacts(info.st_size, info.st_mtime_ns),
            content_type=content_type(found.file),
            cache_control=found.cache_control,
        )
        await send(
            {
                "type": "http.response.start",
                "status": plan.status,
                "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in plan.headers],
            }
        )
        try:
            await asgi_send_plan(path, plan, receive, send)
        except FileChanged as error:
            # The headers are gone: end here, and the server closes the connection on the short
            # body (a job's playlist was rewritten between the stat and the read, say).
            log.warning("media_file_changed", path=found.path, error=str(error))


def wrap(inner: ASGIApp, settings: Settings) -> MediaApp:
    """The node's app: signed media in front of `inner` (after `Settings.with_secret`)."""
    return MediaApp(inner, settings.media_dir, key_map(settings.media_keys))


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (ASGI gives them lower-cased); a repeated one
    is joined into one list, as RFC 9110 5.3 allows."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _discard_body(scope: Scope, receive: Receive) -> None:
    if not any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"]):
        return
    discarded = 0
    while discarded <= MAX_DISCARDED_BODY:
        message = await receive()
        if message["type"] != "http.request":
            return
        discarded += len(message.get("body", b""))
        if not message.get("more_body", False):
            return
