"""Video uploads: tus 1.0 at `/api/v1/uploads`, and one-request multipart for small files.

Upload bodies are streamed to disk as they arrive, far past the app's JSON-sized body limit and
read timeout, so their routes set their own limit (`own_body_limit`) and `BodyLimits` builds
their requests with it. When a request fails before its body is consumed, the rest is read and
dropped chunk by chunk, so a keep-alive connection stays usable and memory stays flat.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from datetime import datetime
from typing import Any

import trio
from quart import Blueprint, Quart, Response, request
from quart.asgi import ASGIHTTPConnection
from quart.wrappers import Request
from quart_schema import tag
from quart_trio.asgi import TrioASGIHTTPConnection
from werkzeug.exceptions import HTTPException

from lms.domain.access import Principal
from lms.errors import LmsError
from lms.http.errors import on_lms_error
from lms.http.openapi_document import no_body
from lms.http.wire import Handler, Services, authenticated, refuses, respond, returns, services
from lms.uploads import tus
from lms.uploads.multipart import MultipartFile
from proto.jobs import JobView
from proto.uploads import Upload, UploadState

# Room for the multipart framing around the file (boundaries, part headers, small fields).
MULTIPART_OVERHEAD = 64 * 1024
# Reading and dropping a failed request's body stops after this long without a byte.
DRAIN_IDLE = 10.0

BodyLimit = Callable[[Services], int | None]

blueprint = Blueprint("uploads", __name__)
tus_blueprint = Blueprint("tus", __name__, url_prefix="/api/v1/uploads")
UPLOAD = "/<uuid:upload_id>"


def own_body_limit(limit: BodyLimit) -> Callable[[Handler], Handler]:
    """Give a route its own request body limit (None: unlimited; the handler enforces one)."""

    def mark(handler: Handler) -> Handler:
        handler.body_limit = limit  # type: ignore[attr-defined]
        return handler

    return mark


class BodyLimits(TrioASGIHTTPConnection):
    """Builds each request with its route's own body limit, if it has one, and lets a streamed
    body end, rather than its handler be cancelled, when the client leaves mid-body.

    Quart fixes a request's body limit (MAX_CONTENT_LENGTH) when it builds the request, before
    routing; a body over it is refused, and one that arrives faster than it is read is too. And
    on a client's disconnect it cancels the handler at once, which would throw away bytes that
    arrived but were not written yet: an upload handler instead sees the body end, writes and
    records what arrived, and answers no one.
    """

    _streamed = False

    def _create_request_from_scope(self, send: Any) -> Request:
        request = super()._create_request_from_scope(send)
        limit: BodyLimit | None = getattr(_view_for(self.app, request), "body_limit", None)
        if limit is not None:
            self._streamed = True
            # No bytes have been read yet: the body's reader starts after this returns.
            request.body = request.body_class(
                request.content_length, limit(self.app.extensions["lms"])
            )
            request.body_timeout = None
        return request

    async def handle_messages(  # type: ignore[override]
        self, nursery: trio.Nursery, request: Request, receive: Any
    ) -> None:
        if not self._streamed:
            await super().handle_messages(nursery, request, receive)
            return
        # Returns when the client disconnects; the handler's own end cancels this task.
        await ASGIHTTPConnection.handle_messages(self, request, receive)
        request.body.set_complete()


def _view_for(app: Quart, request: Request) -> Callable[..., object] | None:
    try:
        rule, _ = app.create_url_adapter(request).match(return_rule=True)  # type: ignore[union-attr]
    except HTTPException:
        return None
    return app.view_functions.get(rule.endpoint)


async def _drain_then_answer(error: LmsError) -> Response:
    """Errors of the upload routes: read and drop what is left of the body, then answer."""
    await _drain()
    return await on_lms_error(error)


async def _drain() -> None:
    while True:
        with trio.move_on_after(DRAIN_IDLE):
            if await anext(request.body, None) is None:
                return
            continue
        return


blueprint.register_error_handler(LmsError, _drain_then_answer)
tus_blueprint.register_error_handler(LmsError, _drain_then_answer)


@tus_blueprint.after_request
async def speak_tus(response: Response) -> Response:
    response.headers["Tus-Resumable"] = tus.VERSION
    if response.status_code == 412:
        response.headers["Tus-Version"] = tus.VERSION
    return response


def _unlimited(_: Services) -> None:
    return None


def _upload_headers(upload: Upload) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.upload_offset)}
    if upload.state is UploadState.RECEIVING:
        headers["Upload-Expires"] = _http_date(upload.expires_at)
    return headers


def _http_date(when: datetime) -> str:
    return email.utils.format_datetime(when, usegmt=True)


@tus_blueprint.route("", methods=["OPTIONS"], provide_automatic_options=False)
@tag(["uploads"])
@no_body(204, "`Tus-Version`, `Tus-Extension` and `Tus-Max-Size`.")
async def tus_options() -> Response:
    """What this tus server supports (no authentication needed)."""
    return Response(
        b"",
        status=204,
        headers={
            "Tus-Version": tus.VERSION,
            "Tus-Extension": tus.EXTENSIONS,
            "Tus-Max-Size": str(services().uploads.limits.max_bytes),
        },
    )


@tus_blueprint.post("")
@tag(["uploads"])
@authenticated
@no_body(201, "Created: `Location` names the upload.")
@refuses(400, 412, 413, 422, 429, 507)
async def create_upload(who: Principal) -> Response:
    """Create a tus upload: `Upload-Length`, and `Upload-Metadata` with base64 `content_id`
    (a video content of a course you teach) and `filename`. 201 with `Location`; 413 over the
    size limit; 429 with too many unfinished uploads."""
    tus.check_version(request.headers.get("Tus-Resumable"))
    await _count_upload(who)
    uploads = services().uploads
    length = tus.parse_length(request.headers.get("Upload-Length"), uploads.limits.max_bytes)
    target = tus.upload_target(tus.parse_metadata(request.headers.get("Upload-Metadata")))
    await request.get_data(cache=False)  # creation carries no bytes here; read any sent
    upload = await uploads.create(who, length, target)
    headers = {"Location": f"/api/v1/uploads/{upload.id}", **_upload_headers(upload)}
    return Response(b"", status=201, headers=headers)


@tus_blueprint.route(UPLOAD, methods=["HEAD"])
@tag(["uploads"])
@authenticated
@no_body(200, "`Upload-Offset` of `Upload-Length` bytes.")
@refuses(410, 412)
async def upload_status(upload_id: Any, who: Principal) -> Response:
    """Where the upload stands: `Upload-Offset` of `Upload-Length` bytes."""
    tus.check_version(request.headers.get("Tus-Resumable"))
    upload = await services().uploads.find(who, str(upload_id))
    metadata = {"content_id": str(upload.content_id), "filename": upload.filename}
    headers = {
        **_upload_headers(upload),
        "Upload-Length": str(upload.upload_length),
        "Upload-Metadata": tus.encode_metadata(metadata),
        "Cache-Control": "no-store",
    }
    return Response(b"", status=200, headers=headers)


@tus_blueprint.patch(UPLOAD)
@own_body_limit(_unlimited)
@tag(["uploads"])
@authenticated
@no_body(204, "Appended: the new `Upload-Offset`.")
@refuses(400, 408, 409, 410, 412, 413, 415, 423, 507)
async def append_to_upload(upload_id: Any, who: Principal) -> Response:
    """Send bytes: `Content-Type: application/offset+octet-stream`, `Upload-Offset` where the
    upload stands (409 otherwise). 204 with the new `Upload-Offset`; the last bytes queue the
    transcode."""
    tus.check_version(request.headers.get("Tus-Resumable"))
    upload = await services().uploads.append(
        who,
        str(upload_id),
        request.body,
        content_type=request.headers.get("Content-Type"),
        upload_offset=request.headers.get("Upload-Offset"),
        content_length=request.content_length,
    )
    return Response(b"", status=204, headers=_upload_headers(upload))


@tus_blueprint.delete(UPLOAD)
@tag(["uploads"])
@authenticated
@no_body(204, "Abandoned; its bytes are deleted.")
@refuses(409, 410, 412)
async def terminate_upload(upload_id: Any, who: Principal) -> Response:
    """Abandon an unfinished upload and delete its bytes."""
    tus.check_version(request.headers.get("Tus-Resumable"))
    await request.get_data(cache=False)
    await services().uploads.terminate(who, str(upload_id))
    return Response(b"", status=204)


async def _count_upload(who: Principal) -> None:
    """Count a new upload against the caller and their client address (429 with
    Retry-After); appending to an upload is not counted."""
    limits = services().limits
    await limits.per_client(limits.upload_per_ip, "uploads from here")
    await limits.per_user(limits.upload_per_user, who.user_id, "uploads from this account")


def _multipart_limit(services: Services) -> int:
    return services.uploads.limits.max_bytes + MULTIPART_OVERHEAD


@blueprint.post("/api/v1/courses/<int:course_id>/contents/<int:content_id>/video")
@own_body_limit(_multipart_limit)
@tag(["uploads"])
@authenticated
@returns(JobView, 202)
@refuses(409, 413, 422, 429, 507)
async def upload_video(course_id: int, content_id: int, who: Principal) -> Response:
    """Upload a small video in one request (multipart/form-data, field `file`); 202 with the
    transcode job. Large files should use tus, which survives a lost connection."""
    await _count_upload(who)
    file = MultipartFile(request.body, request.headers.get("Content-Type"))
    job = await services().uploads.upload_file(who, course_id, content_id, file)
    return respond(job, 202)


blueprint.register_blueprint(tus_blueprint)
