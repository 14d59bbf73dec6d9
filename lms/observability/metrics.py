"""The node's Prometheus registry, served at `/metrics`.

Each node (and each `lms worker`) has a registry of its own, not prometheus-client's global one,
so several nodes in one process (the tests) never mix their figures. Most figures are not
counted by prometheus-client at all: collectors read the `statistics()` snapshots that actors,
pools and caches already keep, when Prometheus scrapes, so the hot paths count nothing extra.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import HistogramMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from lms.domain.histogram import HistogramSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class NodeMetrics:
    def __init__(self, node_id: str, *, role: str = "node") -> None:
        self.node_id = node_id
        # auto_describe=False: a collector's collect() is only run at scrape time, not when
        # it is registered (describing would run it once more, for nothing).
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Identity(node_id, role))
        self._refreshes: list[Callable[[], Awaitable[None]]] = []

    def add(self, collector: Collector) -> None:
        self.registry.register(collector)

    def add_refresh(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """`refresh` runs before each scrape, for the few figures a collector cannot read from
        memory (the job queue by state is a query); it should cache what it reads."""
        self._refreshes.append(refresh)

    async def exposition(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)

    async def families(self) -> list[Metric]:
        """What a scrape would show, as prometheus-client's families (for JSON)."""
        await self.refresh()
        return list(self.registry.collect())

    async def refresh(self) -> None:
        for refresh in self._refreshes:
            await refresh()


class _Identity(Collector):
    def __init__(self, node_id: str, role: str) -> None:
        self._labels = {"node_id": node_id, "role": role}

    def collect(self) -> Iterable[Metric]:
        info = InfoMetricFamily("lms_node", "The process this registry belongs to.")
        info.add_metric([], self._labels)
        yield info


def histogram_family(
    name: str,
    documentation: str,
    labelnames: Sequence[str],
    series: Iterable[tuple[Sequence[str], HistogramSnapshot]],
) -> HistogramMetricFamily:
    """One Prometheus histogram family from labelled `Histogram.snapshot()`s."""
    family = HistogramMetricFamily(name, documentation, labels=labelnames)
    for labels, snapshot in series:
        buckets = [(_le(bound), count) for bound, count in snapshot.buckets]
        family.add_metric(list(labels), buckets, snapshot.sum)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
