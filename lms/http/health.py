"""`/health` (liveness: does the node answer?) and `/api/v1/monitoring/health` (readiness: can
it serve?)."""

from __future__ import annotations

from quart import Blueprint, Response
from quart_schema import tag

from lms.http.wire import respond, returns, services
from proto.api import Health

blueprint = Blueprint("health", __name__)


@blueprint.get("/health")
@tag(["ops"])
@returns(Health)
async def alive() -> Response:
    """200 while the node's event loop answers; no I/O (no component is asked), so a load
    balancer can poll it every second. `components` is empty."""
    return Response(services().health.alive, content_type="application/json")


@blueprint.get("/api/v1/monitoring/health")
@tag(["ops"])
@returns(Health)
@returns(Health, 503)
async def ready() -> Response:
    """200 when every component (database, actors, embedded PostgreSQL, Redis) is fine, else
    503 naming the ones that are not: a node that gave up on a core actor is never ready."""
    report = await services().health.check()
    return respond(report, 200 if report.status == "ok" else 503)
