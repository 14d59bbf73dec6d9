"""The Content-Type a media file is served with, by its name (the same for every server of it:
the Bearer routes, the signed media app, and nginx's `types` in deploy/nginx/lms.conf)."""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

# What players expect, where Python's table has nothing or something else.
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".ts": "video/mp2t",
    ".vtt": "text/vtt; charset=utf-8",
}


def content_type(name: str) -> str:
    path = PurePosixPath(name)
    known = CONTENT_TYPES.get(path.suffix.lower())
    return known or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
