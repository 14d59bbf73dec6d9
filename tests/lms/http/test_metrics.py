"""`/metrics` for Prometheus (no token) and `/api/v1/monitoring/stats` for admins (the same
figures as JSON), on a real node."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lms.config import Settings
from tests.lms.http.conftest import Login


async def test_prometheus_scrapes_the_node_without_a_token_at_both_paths(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    for path in ("/metrics", "/api/v1/monitoring/metrics"):
        response = await api.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        assert families["lms_node_info"].samples[0].labels["node_id"] == settings.node_id
        assert families["lms_db_pool_max"].samples[0].value == settings.db_pool_max
        assert {"lms_progress_batch_size", "lms_transcode_jobs", "lms_actor_mailbox_depth"} <= set(
            families
        )


async def test_only_an_admin_reads_the_figures_as_json(
    api: httpx.AsyncClient, admin: Login, learner: Login, settings: Settings
) -> None:
    anonymous = await api.get("/api/v1/monitoring/stats")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"
    refused = await api.get("/api/v1/monitoring/stats", headers=learner.auth)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"

    stats = await api.get("/api/v1/monitoring/stats", headers=admin.auth)
    assert stats.status_code == 200
    body = stats.json()
    assert body["node_id"] == settings.node_id
    families = {family["name"]: family for family in body["metrics"]}
    assert families["lms_node_info"]["type"] == "info"
    updates = families["lms_progress_updates_total"]
    assert (updates["type"], updates["samples"]) == (
        "counter",
        [{"name": "lms_progress_updates_total", "labels": {}, "value": 0.0}],
    )
    batch = families["lms_progress_batch_size"]
    assert batch["type"] == "histogram"
    names = {sample["name"] for sample in batch["samples"]}
    assert names == {
        "lms_progress_batch_size_bucket",
        "lms_progress_batch_size_sum",
        "lms_progress_batch_size_count",
    }
    assert {"le": "+Inf"} in [sample["labels"] for sample in batch["samples"]]
    pool = families["lms_db_pool_max"]["samples"]
    assert pool == [{"name": "lms_db_pool_max", "labels": {}, "value": settings.db_pool_max}]
