"""The Quart-Trio application: blueprints, OpenAPI, error handlers, request ids."""

from __future__ import annotations

from typing import cast

import structlog
from quart import Response, request, websocket
from quart_schema import Info, QuartSchema
from quart_trio import QuartTrio

from lms.http import (
    admin_mail,
    announcements,
    auth,
    courses,
    dashboard,
    dashboard_page,
    docs,
    health,
    jobs,
    live_page,
    metrics,
    notifications,
    progress,
    reset_page,
    streaming,
    uploads,
    users,
    watch_page,
    ws,
)
from lms.http.asgi import Scope
from lms.http.errors import install_error_handlers
from lms.http.openapi_document import Document
from lms.http.wire import IdConverter, Services
from lms.observability.requests import request_id, track_routes


def create_app(services: Services, *, max_body_bytes: int) -> QuartTrio:
    app = QuartTrio("lms")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.extensions["lms"] = services
    # Ids fit bigint (set before any route is added: rules take their converters then). And
    # `//` in a path is a 404, not werkzeug's redirect, which builds an absolute URL from the
    # client's own Host header (an open redirect).
    app.url_map.converters["int"] = IdConverter
    app.url_map.merge_slashes = False
    QuartSchema(
        app,
        info=Info(title="LMS streaming server", version="1"),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer", "bearer_format": "JWT"}},
        # Its pages load from CDNs with inline scripts: /docs is served by lms/http/docs.py.
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
        convert_casing=False,
        openapi_provider_class=Document,
    )
    install_error_handlers(app)
    for module in (auth, users, courses, health, progress, announcements, ws, live_page):
        app.register_blueprint(module.blueprint)
    for module in (uploads, jobs, streaming, docs, watch_page, dashboard, dashboard_page):
        app.register_blueprint(module.blueprint)
    app.register_blueprint(admin_mail.blueprint)
    app.register_blueprint(notifications.blueprint)
    app.register_blueprint(reset_page.blueprint)
    app.register_blueprint(metrics.blueprint)
    # Upload routes stream bodies past MAX_CONTENT_LENGTH: each request gets its route's limit.
    app.asgi_http_class = uploads.BodyLimits

    # The access line and metrics need each request's URL rule (lms/observability/requests.py).
    track_routes(app)

    @app.before_request
    async def bind_request_context() -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id(cast(Scope, request.scope)),
            method=request.method,
            path=request.path,
        )

    @app.before_websocket
    async def bind_websocket_context() -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id(cast(Scope, websocket.scope)), path=websocket.path
        )

    @app.after_request
    async def tag_response(response: Response) -> Response:
        context = structlog.contextvars.get_contextvars()
        response.headers["X-Request-ID"] = context.get("request_id", "")
        return response

    return app
