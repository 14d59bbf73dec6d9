from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from lms.domain.histogram import Histogram
from lms.observability.metrics import NodeMetrics, histogram_family


async def test_two_nodes_in_one_process_each_expose_only_their_own_figures() -> None:
    first, second = NodeMetrics("a"), NodeMetrics("b")
    histogram = Histogram((1.0,))
    histogram.observe(0.5)

    class Latency(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            yield histogram_family(
                "lms_test_seconds", "A test.", ["kind"], [(["x"], histogram.snapshot())]
            )

    first.add(Latency())
    families = {
        f.name: f for f in text_string_to_metric_families((await first.exposition()).decode())
    }
    assert families["lms_node_info"].samples[0].labels == {"node_id": "a", "role": "node"}
    buckets = {
        s.labels["le"]: s.value
        for s in families["lms_test_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert buckets == {"1.0": 1.0, "+Inf": 1.0}
    assert "lms_test_seconds" not in (await second.exposition()).decode()
