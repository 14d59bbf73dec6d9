"""`/metrics` and `/api/v1/monitoring/metrics` (Prometheus text) and
`/api/v1/monitoring/stats` (the same figures as JSON, for admins).

The Prometheus routes ask for no token, as Prometheus scrapes them: deploy/nginx keeps them off
the public internet (only the monitoring network reaches a node's port directly). They show
counts and timings, never a user, a path or a token.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import Metric
from quart import Blueprint, Response
from quart_schema import document_response, tag

from lms.domain.access import Principal
from lms.errors import Forbidden
from lms.http.wire import authenticated, respond, returns, services
from lms.observability.metrics import CONTENT_TYPE
from proto.api import ErrorBody
from proto.monitoring import MetricFamilyView, MetricSample, MonitoringStats

blueprint = Blueprint("metrics", __name__)

# prometheus-client names a counter's family without `_total` and an info's without `_info`;
# the JSON names families as /metrics and the dashboards do.
_SUFFIXES = {"counter": "_total", "info": "_info"}


@blueprint.get("/metrics")
@tag(["ops"])
async def prometheus() -> Response:
    """This node's figures in Prometheus' text format (no token: keep it off the internet)."""
    return await _exposition()


@blueprint.get("/api/v1/monitoring/metrics")
@tag(["ops"])
async def prometheus_under_api() -> Response:
    """The same as `/metrics`, under the API's prefix."""
    return await _exposition()


@blueprint.get("/api/v1/monitoring/stats")
@tag(["ops"])
@authenticated
@returns(MonitoringStats)
@document_response(ErrorBody, 403)
async def stats(who: Principal) -> Response:
    """This node's `/metrics` as JSON (admins): every family with its samples; a histogram's
    as `_bucket` samples (with an `le` label), `_sum` and `_count`."""
    if not who.is_admin:
        raise Forbidden("only admins see the node's figures")
    metrics = services().metrics
    return respond(MonitoringStats(metrics.node_id, families_view(await metrics.families())))


async def _exposition() -> Response:
    body = await services().metrics.exposition()
    return Response(body, content_type=CONTENT_TYPE)


def families_view(families: Iterable[Metric]) -> list[MetricFamilyView]:
    return [
        MetricFamilyView(
            name=family.name + _SUFFIXES.get(family.type, ""),
            type=family.type,  # type: ignore[arg-type]  # the four kinds our collectors make
            help=family.documentation,
            samples=[
                MetricSample(sample.name, dict(sample.labels), float(sample.value))
                for sample in family.samples
            ],
        )
        for family in families
    ]
