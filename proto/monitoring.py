"""`GET /api/v1/monitoring/stats`: a node's `/metrics` as JSON, for the admin page."""

from __future__ import annotations

from typing import Literal

from proto.api import Response


class MetricSample(Response, frozen=True):
    """One value. `name` tells a histogram's `_bucket` (with an `le` label), `_sum` and
    `_count` samples apart; a counter's is its `_total`, a gauge's its family's."""

    name: str
    labels: dict[str, str]
    value: float


class MetricFamilyView(Response, frozen=True):
    name: str
    type: Literal["counter", "gauge", "histogram", "info"]
    help: str
    samples: list[MetricSample]


class MonitoringStats(Response, frozen=True):
    node_id: str
    metrics: list[MetricFamilyView]
