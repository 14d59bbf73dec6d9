"""Errors to Sentry, when LMS_SENTRY_DSN is set: unhandled request errors and actor crashes.

Nothing here imports sentry-sdk until `sentry_reporting` is entered with a DSN, so a node
without one never loads it. The hooks (`report_request_error`, the `actor_crashed` log
processor) are no-ops until then.

Events carry ids, never personal data: the request id (the one in the access line and the
X-Request-ID header), the user id, the node and the actor. A request's event names its method,
its URL rule (never the path, which may hold a signature or a token) and its headers but the
credentials and the client's address (Authorization, Cookie, X-Forwarded-For...); no local
variables (they hold tokens, addresses, bodies), no bodies, no query strings.

Actor crashes are reported from the structlog chain, on the supervisor's `actor_crashed` line,
rather than from a callback handed to every supervisor: the registries that run rooms and
sessions build supervisors of their own, and actors/ must not know about Sentry.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import structlog
from quart import has_request_context, has_websocket_context, request, websocket

from lms.config import Settings
from lms.observability.requests import ROUTE, UNMATCHED, USER_ID

if TYPE_CHECKING:
    from quart.wrappers import Request, Websocket
    from sentry_sdk.types import Event, Hint

# Seconds the node waits, as it stops, for events still queued to reach the server.
FLUSH_TIMEOUT = 5.0
# Bound log context worth a tag: ids that let an event be matched to log lines.
CONTEXT_TAGS = ("request_id", "user_id", "actor", "course_id", "job_id")
# Headers never sent: credentials, and the client's address (personal data).
UNSENT_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie"}
    | {"forwarded", "x-forwarded-for", "x-real-ip"}
)


@contextmanager
def sentry_reporting(settings: Settings) -> Iterator[None]:
    """Report to `settings.sentry_dsn` for the block (a node's or a worker's life); with no
    DSN, do nothing at all. An exception leaving the block is reported too; on the way out
    queued events are flushed (for at most `FLUSH_TIMEOUT` seconds) and reporting stops."""
    if settings.sentry_dsn is None:
        yield
        return
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment,
        server_name=settings.node_id,
        # Named, or sentry-sdk runs git at start to guess one.
        release=f"lms-streaming@{version('lms-streaming')}",
        # What send_default_pii=False meant, in its successor's words, and no local variables
        # (they hold tokens, addresses, bodies) or request bodies either.
        data_collection={
            "user_info": False,
            "http_bodies": [],
            "stack_frame_variables": False,
        },
        # No automatic integrations: they would patch Quart, logging and subprocess, and send
        # log lines and commands as breadcrumbs. What we report, we report ourselves.
        default_integrations=False,
        auto_enabling_integrations=False,
        before_send=_before_send,
    )
    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[_report_actor_crash, *processors])
    try:
        yield
    except Exception as exc:
        sentry_sdk.capture_exception(exc)
        raise
    finally:
        structlog.configure(processors=processors)
        client = sentry_sdk.get_client()
        client.close(timeout=FLUSH_TIMEOUT)
        sentry_sdk.get_global_scope().set_client(None)


def report_request_error(error: BaseException) -> None:
    """Send an error no handler answered (the 500 handler calls this), tagged with the
    request's id and user id; a no-op unless reporting."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is None or not sentry_sdk.get_client().is_active():
        return
    with sentry_sdk.new_scope() as scope:
        current = _current_request()
        if current is not None:
            user_id = current.scope.get(USER_ID)
            if user_id is not None:
                scope.set_tag("user_id", str(user_id))
                scope.set_user({"id": str(user_id)})
            described = {
                "method": getattr(current, "method", "GET"),  # a WebSocket's is its upgrade
                "url": current.scope.get(ROUTE, UNMATCHED),
                "headers": dict(current.headers),  # _before_send drops the unsent ones
            }
            scope.add_event_processor(lambda event, hint: {**event, "request": described})
        sentry_sdk.capture_exception(error)


def _current_request() -> Request | Websocket | None:
    """The request (or WebSocket) being handled, if any."""
    if has_request_context():
        return request
    if has_websocket_context():
        return websocket
    return None


def _report_actor_crash(
    logger: object, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the supervisor's `actor_crashed` line becomes a Sentry event
    with the crash's traceback, tagged with the actor (and the ids bound to it)."""
    crash = event.get("exc_info")
    if event.get("event") == "actor_crashed" and isinstance(crash, BaseException):
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            for key in CONTEXT_TAGS:
                if key in event:
                    scope.set_tag(key, str(event[key]))
            sentry_sdk.capture_exception(crash)
    return event


def _before_send(event: Event, hint: Hint) -> Event:
    """Every event: the ids bound to the log context as tags; credentials and addresses
    removed from whatever headers it carries."""
    tags = event.setdefault("tags", {})
    for key, value in structlog.contextvars.get_contextvars().items():
        if key in CONTEXT_TAGS and key not in tags:
            tags[key] = str(value)
    headers = event.get("request", {}).get("headers")
    if isinstance(headers, dict):
        for name in [n for n in headers if n.lower() in UNSENT_HEADERS]:
            del headers[name]
    return event
