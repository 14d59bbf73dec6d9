"""`/health` and `/api/v1/monitoring/health`: is this node able to serve?"""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import tag

from lms.http.wire import respond, returns, services
from proto.api import Health

blueprint = Blueprint("health", __name__)


@blueprint.get("/health")
@blueprint.get("/api/v1/monitoring/health")
@tag(["ops"])
@returns(Health)
@returns(Health, 503)
async def health() -> Response:
    """200 when every component (database, embedded PostgreSQL, Redis) answers, else 503."""
    report = await services().health.check()
    return respond(report, 200 if report.status == "ok" else 503)
