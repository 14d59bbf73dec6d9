"""`/api/v1/stream/video/{content_id}`: the manifest, and the files it points to, with ranges.

Files are served by this node in 256 KiB reads off a thread, with single byte ranges (see
`lms/domain/ranges.py` for what a Range header gets), `If-Range`, `ETag` and `If-None-Match`.
A later "streaming edge" hands the bytes to nginx (X-Accel-Redirect) and signs URLs; the access
checks stay here.
"""

from __future__ import annotations

import email.utils
import mimetypes
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import trio
from quart import Blueprint, Response, request
from quart_schema import tag

from lms.domain.access import Principal
from lms.domain.ranges import UNSATISFIABLE, WHOLE, ByteRange, parse_range, range_applies
from lms.domain.ranges import unsatisfiable_range as unsatisfiable
from lms.errors import NotFound
from lms.http.errors import error_response
from lms.http.wire import authenticated, respond, returns, services
from proto.jobs import VideoManifest

CHUNK = 256 * 1024
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".ts": "video/mp2t",
    ".vtt": "text/vtt; charset=utf-8",
}

# The file system refuses longer names (NAME_MAX) with an error of its own; the worker writes
# short ones, so a longer request names no file. The path bound keeps far below PATH_MAX.
MAX_NAME_BYTES = 255
MAX_HLS_PATH_BYTES = 1024

blueprint = Blueprint("streaming", __name__, url_prefix="/api/v1/stream/video")
VIDEO = "/<int:content_id>"


def _base(content_id: int) -> str:
    return f"{blueprint.url_prefix}/{content_id}"


@blueprint.get(VIDEO + "/manifest")
@tag(["streaming"])
@authenticated
@returns(VideoManifest)
async def manifest(content_id: int, who: Principal) -> Response:
    """What the video can play now: status (queued, probing, transcoding, ready, failed,
    cancelled), progress, and the renditions and files as soon as each is playable."""
    return respond(await services().videos.manifest(who, content_id, _base(content_id)))


@blueprint.get(VIDEO)
@tag(["streaming"])
@authenticated
async def rendition(content_id: int, who: Principal) -> Response:
    """A progressive MP4 (`?quality=720p`; the best one without), with HTTP ranges."""
    quality = request.args.get("quality")
    return await serve_file(await services().videos.rendition(who, content_id, quality))


@blueprint.get(VIDEO + "/thumbnail")
@tag(["streaming"])
@authenticated
async def thumbnail(content_id: int, who: Principal) -> Response:
    return await serve_file(await services().videos.thumbnail(who, content_id))


@blueprint.get(VIDEO + "/preview")
@tag(["streaming"])
@authenticated
async def preview(content_id: int, who: Principal) -> Response:
    return await serve_file(await services().videos.preview(who, content_id))


@blueprint.get(VIDEO + "/storyboard/<name>")
@tag(["streaming"])
@authenticated
async def storyboard(content_id: int, name: str, who: Principal) -> Response:
    """The storyboard's WebVTT, and the sprite image its cues point into."""
    return await serve_file(await services().videos.storyboard(who, content_id, name))


@blueprint.get(VIDEO + "/hls/<path:path>")
@tag(["streaming"])
@authenticated
async def hls(content_id: int, path: str, who: Principal) -> Response:
    """The HLS master playlist (`master.m3u8`) and what it references."""
    if len(path.encode()) > MAX_HLS_PATH_BYTES or any(
        len(part.encode()) > MAX_NAME_BYTES for part in path.split("/")
    ):
        raise NotFound(
            f"no such HLS file: names are at most {MAX_NAME_BYTES} bytes, "
            f"paths at most {MAX_HLS_PATH_BYTES}"
        )
    return await serve_file(await services().videos.hls(who, content_id, path))


async def serve_file(path: Path) -> Response:
    try:
        info = await trio.Path(path).stat()
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound("this file is not ready") from None
    if not stat.S_ISREG(info.st_mode):
        raise NotFound("this file is not ready")
    size = info.st_size
    etag = f'"{info.st_mtime_ns:x}-{size:x}"'
    last_modified = email.utils.formatdate(info.st_mtime, usegmt=True)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Last-Modified": last_modified,
        # Revalidate every time: playlists grow while a video transcodes, and a re-upload
        # replaces every file under the same URL.
        "Cache-Control": "private, no-cache",
    }
    if etag in request.headers.get("If-None-Match", ""):
        return Response(b"", status=304, headers=headers)
    wanted = parse_range(request.headers.get("Range"), size)
    if not range_applies(request.headers.get("If-Range"), etag, last_modified):
        wanted = WHOLE
    if wanted is UNSATISFIABLE:
        response = error_response(
            416, "range_not_satisfiable", f"the file has {size} bytes; ask for a range inside it"
        )
        response.headers["Content-Range"] = unsatisfiable(size)
        return response
    status = 200
    part = ByteRange(0, size - 1)
    if isinstance(wanted, ByteRange):
        status, part = 206, wanted
        headers["Content-Range"] = part.content_range(size)
    headers["Content-Type"] = _content_type(path)
    headers["Content-Length"] = str(part.length)
    response = Response(_read(path, part.first, part.length), status=status, headers=headers)
    # A slow player on a long video takes as long as it takes.
    response.timeout = None
    return response


def _content_type(path: Path) -> str:
    known = CONTENT_TYPES.get(path.suffix.lower())
    return known or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


async def _read(path: Path, first: int, length: int) -> AsyncIterator[bytes]:
    async with await trio.open_file(path, "rb") as file:
        await file.seek(first)
        while length > 0:
            chunk = await file.read(min(CHUNK, length))
            if not chunk:
                return  # the file shrank under us; the client sees a short body
            length -= len(chunk)
            yield chunk
