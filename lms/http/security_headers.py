"""Security headers on every HTTP answer of the node, with nginx in front or without it.

One ASGI layer (lms/node.py puts it around everything else, the signed media app included) adds
to each answer the headers its route did not set: a route's own, stricter choice stands alone
(/docs has its own Content-Security-Policy, lms/http/docs.py; the pages and the unsubscribe
answers say `Referrer-Policy: no-referrer`), because a second header would not replace it:
browsers enforce every CSP they are given and take the last Referrer-Policy.

nginx (deploy/nginx/lms.conf) adds the same headers, by the same rule, to what it answers itself
(signed media from the volume, its own errors): its maps on `$upstream_http_...` add a header only
where the node sent none, so an answer through both layers carries each once. The pages' policy is
written here once; tests/lms/http/test_security_headers.py checks lms.conf carries the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from lms.http.asgi import ASGIApp, Message, Receive, Scope, Send

# The pages load scripts, styles and images from /static only, and no inline script or style
# (tests/lms/http/test_static_page.py). hls.js plays through MediaSource (blob: media) and may
# start a blob: worker. connect-src 'self' covers wss://<this host> in browsers of CSP 3.
_PAGE_DIRECTIVES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("default-src", ("'self'",)),
    ("script-src", ("'self'",)),
    ("style-src", ("'self'",)),
    ("img-src", ("'self'", "data:", "blob:")),
    ("media-src", ("'self'", "blob:")),
    ("worker-src", ("'self'", "blob:")),
    ("connect-src", ("'self'",)),
    ("object-src", ("'none'",)),
    ("base-uri", ("'none'",)),
    ("form-action", ("'self'",)),
    ("frame-ancestors", ("'none'",)),
)
# Where a media CDN (LMS_MEDIA_BASE_URL) is reached from a page: hls.js fetches playlists and
# segments, Safari's native HLS plays them as media, thumbnails and storyboard tiles are images.
_MEDIA_DIRECTIVES = frozenset({"img-src", "media-src", "connect-src"})


def page_policy(media_base_url: str = "") -> str:
    """The Content-Security-Policy of the node's pages, allowing `media_base_url`'s origin."""
    extra: tuple[str, ...] = ()
    if media_base_url:
        parts = urlsplit(media_base_url)
        extra = (f"{parts.scheme}://{parts.netloc}",)
    return "; ".join(
        " ".join((name, *sources, *(extra if name in _MEDIA_DIRECTIVES else ())))
        for name, sources in _PAGE_DIRECTIVES
    )


# The text deploy/nginx/lms.conf adds where the node set none (it serves no page itself).
PAGE_POLICY = page_policy()
REFERRER_POLICY = "strict-origin-when-cross-origin"


def default_headers(media_base_url: str = "") -> tuple[tuple[bytes, bytes], ...]:
    """Each answer's headers unless its route set its own (ASGI's lower-case names)."""
    return (
        (b"content-security-policy", page_policy(media_base_url).encode()),
        (b"referrer-policy", REFERRER_POLICY.encode()),
        (b"x-content-type-options", b"nosniff"),
        # frame-ancestors 'none' in the CSP, for browsers that predate it.
        (b"x-frame-options", b"DENY"),
    )


class SecurityHeaders:
    """ASGI: adds `headers` to every HTTP answer of `inner` that lacks them; WebSockets and
    lifespan pass untouched."""

    def __init__(self, inner: ASGIApp, headers: Sequence[tuple[bytes, bytes]]) -> None:
        self._inner = inner
        self._headers = tuple(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._inner(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in headers}
                headers.extend(pair for pair in self._headers if pair[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self._inner(scope, receive, send_with_headers)
