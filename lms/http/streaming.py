"""`/api/v1/stream/video/{content_id}`: the manifest, and the files it points to, with ranges.

Files are planned by `lms/domain/file_response.py` (ranges as nginx answers them, multipart
byteranges, `If-Range`, `If-None-Match`, `If-Modified-Since`, HEAD) and sent by
`lms/http/file_body.py`, the shell the signed media app uses too. With LMS_ACCEL_REDIRECT set,
the access check stays here and nginx sends the bytes (`X-Accel-Redirect` into its internal
location on the media volume). Players get signed URLs from the manifest instead
(lms/http/media_app.py); these routes are for API clients holding a token.
"""

from __future__ import annotations

import stat
from pathlib import Path

import trio
from quart import Blueprint, Response, request
from quart_schema import tag

from lms.domain.access import Principal
from lms.domain.file_response import FileFacts, plan_file_response
from lms.domain.media_types import content_type
from lms.errors import NotFound
from lms.http.file_body import quart_response
from lms.http.wire import authenticated, respond, returns, services
from proto.jobs import VideoManifest

# The file system refuses longer names (NAME_MAX) with an error of its own; the worker writes
# short ones, so a longer request names no file. The path bound keeps far below PATH_MAX.
MAX_NAME_BYTES = 255
MAX_HLS_PATH_BYTES = 1024

blueprint = Blueprint("streaming", __name__, url_prefix="/api/v1/stream/video")
VIDEO = "/<int:content_id>"


@blueprint.get(VIDEO + "/manifest")
@tag(["streaming"])
@authenticated
@returns(VideoManifest)
async def manifest(content_id: int, who: Principal) -> Response:
    """What the video can play now: status (queued, probing, transcoding, ready, failed,
    cancelled), progress, and the renditions and files as soon as each is playable."""
    return respond(await services().videos.manifest(who, content_id))


@blueprint.get(VIDEO)
@tag(["streaming"])
@authenticated
async def rendition(content_id: int, who: Principal) -> Response:
    """A progressive MP4 (`?quality=720p`; the best one for `auto` or without), with HTTP
    ranges."""
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
    # Revalidate every time: playlists grow while a video transcodes, and a re-upload replaces
    # every file under the same URL.
    cache_control = "private, no-cache"
    redirect = services().videos.accel_redirect(path)
    if redirect is not None:
        # nginx answers ranges and conditionals itself, keeping these headers.
        headers = {
            "X-Accel-Redirect": redirect,
            "Content-Type": content_type(path.name),
            "Cache-Control": cache_control,
        }
        return Response(b"", headers=headers)
    plan = plan_file_response(
        request.method,
        request.headers,
        FileFacts(info.st_size, info.st_mtime_ns),
        content_type=content_type(path.name),
        cache_control=cache_control,
    )
    return quart_response(path, plan)
