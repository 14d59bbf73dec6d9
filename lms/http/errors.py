"""Every failure leaves as `{"error": {"code", "message"}}` with the right status.

Unexpected exceptions are logged with their traceback and the request id, and the client gets a
plain 500 naming that id: no stack trace ever reaches a client.
"""

from __future__ import annotations

import contextlib
import math

import structlog
from quart import Quart, Response, has_request_context, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from actors.runtime import ActorError, AskTimeout
from lms.errors import LmsError
from lms.http.wire import respond
from lms.observability.sentry import report_request_error
from lms.store.database import StoreUnavailable
from proto.api import ErrorBody, ErrorDetail

log = structlog.get_logger()


def error_response(
    status: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> Response:
    return respond(ErrorBody(ErrorDetail(code, message, details)), status)


async def _discard_body() -> None:
    # A keep-alive connection whose request body was never read can stall the next request on it
    # (see STACK.md), so an error raised before the handler read the body reads it now.
    with contextlib.suppress(Exception):
        await request.get_data(cache=False)


async def on_lms_error(error: LmsError) -> Response:
    await _discard_body()
    response = error_response(error.status, error.code, error.message, error.details)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return response


async def on_http_error(error: HTTPException) -> Response:
    if not isinstance(error, RequestEntityTooLarge):
        await _discard_body()
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    return error_response(status, code, _http_message(error, status))


def _http_message(error: HTTPException, status: int) -> str:
    """Ours when we raised it with a description naming the problem; else a short one of ours
    in place of werkzeug's HTML-era sentence. Also answers a WebSocket upgrade, which has no
    request method."""
    if error.description and error.description != type(error).description:
        return error.description
    if status == 405:
        method = request.method if has_request_context() else "a WebSocket"
        return f"{method} is not allowed here"
    return {404: "no such resource", 413: "the request body is too large"}.get(
        status, error.description or error.name or "request failed"
    )


async def on_store_unavailable(error: StoreUnavailable) -> Response:
    log.warning("store_unavailable", error=str(error))
    return error_response(503, "database_unavailable", "the database is unavailable; retry soon")


async def on_actor_error(error: ActorError) -> Response:
    # The actor's name and detail are for the log; the client learns only that it may retry.
    await _discard_body()
    log.warning("actor_unavailable", error=str(error))
    if isinstance(error, AskTimeout):
        return error_response(504, "timeout", "the server took too long to answer; retry soon")
    return error_response(503, "unavailable", "the server cannot take this request now; retry soon")


async def on_unexpected(error: Exception) -> Response:
    log.exception("request_failed")
    report_request_error(error)
    # From the bound context, not the request: this also runs for WebSocket handlers, where
    # there is no request object.
    request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    return error_response(500, "internal", f"internal server error {request_id}".strip())


def install_error_handlers(app: Quart) -> None:
    app.register_error_handler(LmsError, on_lms_error)
    app.register_error_handler(HTTPException, on_http_error)
    app.register_error_handler(StoreUnavailable, on_store_unavailable)
    app.register_error_handler(ActorError, on_actor_error)
    app.register_error_handler(Exception, on_unexpected)
