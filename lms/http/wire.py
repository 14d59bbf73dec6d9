"""What every edge does to a request and a response: parse the body, know the caller, write JSON.

Edges stay thin by leaning on these: a handler declares its body type and whether it needs a
caller, and returns a proto Struct; parsing, authentication and encoding happen here once.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import msgspec
from quart import Response, current_app, request
from quart_schema import document_request, document_response, security_scheme
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

import proto
from lms.accounts.password_reset import PasswordResets
from lms.accounts.service import Accounts
from lms.analytics.service import Analytics
from lms.cache.cache import Cache
from lms.catalog.service import Catalog
from lms.domain.access import Principal
from lms.errors import Invalid, LmsError, Unauthenticated
from lms.health import NodeHealth
from lms.http.asgi import Scope
from lms.http.rate_limits import RateLimits
from lms.jobs.service import Jobs
from lms.jobs.videos import Videos
from lms.live.service import LiveService
from lms.mail.admin import OutboxAdmin
from lms.mail.notifications import Notifications
from lms.observability.metrics import NodeMetrics
from lms.observability.requests import USER_ID
from lms.progress.service import ProgressService
from lms.uploads.service import Uploads
from proto.api import MAX_ID, ErrorBody

T = TypeVar("T", bound=msgspec.Struct)
Handler = Callable[..., Awaitable[Any]]

# What a route that reads a JSON body may refuse it with: malformed JSON, a body over the size
# limit, another content type, a body of the wrong shape (`read_json`).
BODY_REFUSALS = (400, 413, 415, 422)
# What a route that needs a caller may refuse with: no valid token, a caller the rules refuse.
CALLER_REFUSALS = (401, 403)


@dataclass(frozen=True)
class Services:
    """What the edges talk to, built once by the node."""

    accounts: Accounts
    catalog: Catalog
    health: NodeHealth
    progress: ProgressService
    live: LiveService
    uploads: Uploads
    jobs: Jobs
    videos: Videos
    analytics: Analytics
    # The node's cache, for services and edges that keep answers in it.
    cache: Cache
    # The outbox as admins see it (/api/v1/admin/mail).
    outbox: OutboxAdmin
    # Mail settings, unsubscribing and template previews.
    notifications: Notifications
    password_resets: PasswordResets
    limits: RateLimits
    # The node's Prometheus registry (/metrics); collectors are added as the node starts.
    metrics: NodeMetrics


def services() -> Services:
    return current_app.extensions["lms"]


class BadJson(LmsError):
    status = 400
    code = "bad_json"


class UnsupportedMediaType(LmsError):
    status = 415
    code = "unsupported_media_type"


def json_body(model: type[T]) -> Callable[[Handler], Handler]:
    """Parse the request body as `model` (strictly) and pass it as the `body` argument.

    Malformed JSON is a 400; JSON of the wrong shape (missing or unknown fields, wrong types,
    values out of range) is a 422 naming the field; a body over the size limit is a 413.
    """

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def parse_then_handle(*args: Any, **kwargs: Any) -> Any:
            return await handler(*args, body=await read_json(model), **kwargs)

        return refuses(*BODY_REFUSALS)(document_request(model)(parse_then_handle))

    return decorate


def refuses(*statuses: int) -> Callable[[Handler], Handler]:
    """Document that the handler may answer each of `statuses` with the JSON error body."""

    def decorate(handler: Handler) -> Handler:
        for status in statuses:
            handler = document_response(ErrorBody, status)(handler)
        return handler

    return decorate


async def read_json(model: type[T]) -> T:
    data = await request.get_data(cache=False)
    if request.mimetype and not _is_json(request.mimetype):
        raise UnsupportedMediaType("send the body as JSON with Content-Type: application/json")
    if not data:
        raise BadJson("the request needs a JSON body")
    try:
        body = proto.decode(data, model)
    except msgspec.ValidationError as exc:
        raise Invalid(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BadJson(f"the request body is not valid JSON: {exc}") from None
    # JSON carries a NUL only as this escape (a raw control character is malformed JSON), so
    # nearly every body skips the walk.
    if b"\\u0000" in data:
        refuse_nul(body, "$")
    return body


def refuse_nul(value: object, where: str) -> None:
    """Raise `Invalid` naming the first string in a decoded body that holds a NUL character.

    PostgreSQL cannot store one in text, so any such string would fail deep in a query; one
    check here covers every field of every body (names, e-mail addresses, titles, ...).
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise Invalid(f"text may not contain the NUL character (\\u0000) - at `{where}`")
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            refuse_nul(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            refuse_nul(item, f"{where}[{index}]")


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def authenticated(handler: Handler) -> Handler:
    """Require a valid access token and pass the caller as the `who` argument."""

    @functools.wraps(handler)
    async def check_then_handle(*args: Any, **kwargs: Any) -> Any:
        return await handler(*args, who=await caller(), **kwargs)

    return security_scheme([{"bearer": []}])(refuses(*CALLER_REFUSALS)(check_then_handle))


async def caller() -> Principal:
    """The request's bearer as their account stands now (see `Accounts.authenticate`)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send an access token as 'Authorization: Bearer <token>'")
    who = await services().accounts.authenticate(token.strip())
    # For the access line (lms/observability/requests.py).
    cast(Scope, request.scope)[USER_ID] = who.user_id
    return who


class IdConverter(IntegerConverter):
    """`<int:...>` in routes: an id fits the bigint columns ids live in, so a longer number is
    refused as naming nothing before it reaches (and fails in) a query."""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > MAX_ID:
            raise NotFound(f"no such resource: ids are at most {MAX_ID}")
        return number


def returns(model: type[Any], status: int = 200) -> Callable[[Handler], Handler]:
    """Document the response type for OpenAPI (the handler returns it via `respond`)."""
    return document_response(model, status)


def respond(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        proto.encode(value), status=status, headers=headers, content_type="application/json"
    )


def no_content() -> Response:
    return Response(b"", status=204)


def query_int(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in [low, high], or a 422 naming it."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"query parameter {name!r} must be a whole number") from None
    if not low <= value <= high:
        raise Invalid(f"query parameter {name!r} must be from {low} to {high}")
    return value
