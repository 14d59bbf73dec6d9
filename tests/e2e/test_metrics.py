"""What Prometheus scrapes from real processes: two nodes on one PostgreSQL and one Redis and an
`lms worker` with LMS_METRICS_PORT each serve their own figures, and admins read a node's as
JSON."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.admins import ADMIN, create_admin, signed_in
from tests.e2e.nodes import database_node_env, start_nodes, start_worker
from tests.lms.http.conftest import log_in, sign_up
from tests.lms.http.test_progress import PROGRESS, enrol, make_course
from tests.polling import eventually

pytestmark = pytest.mark.e2e

Families = dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]
POOL_MAX = "5"
# Families every node serves, whatever it has done so far.
NODE_FAMILIES = {
    "lms_node_info",
    "lms_http_requests_total",
    "lms_actor_mailbox_depth",
    "lms_actor_mailbox_capacity",
    "lms_actor_restarts_total",
    "lms_live_rooms",
    "lms_live_sessions",
    "lms_transcode_jobs",
    "lms_transcode_job_duration_seconds",
    "lms_transcode_realtime_ratio",
    "lms_transcode_failures_total",
    "lms_time_to_playable_seconds",
    "lms_progress_updates_total",
    "lms_progress_batch_size",
    "lms_progress_commit_seconds",
    "lms_cache_hits_total",
    "lms_cache_misses_total",
    "lms_mail_sent_total",
    "lms_mail_retried_total",
    "lms_mail_dead_total",
    "lms_db_pool_connections",
    "lms_db_pool_max",
    "lms_bridge_call_seconds",
    "lms_slow_queries_total",
}


async def scrape(url: str) -> Families:
    """Each family's samples by sample name and labels; a counter's family named with its
    `_total`, as the JSON stats and the dashboards name it."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        family.name + ("_total" if family.type == "counter" else ""): {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for sample in family.samples
        }
        for family in text_string_to_metric_families(response.text)
    }


def value(families: Families, name: str, **labels: str) -> float:
    family = name.removesuffix("_count").removesuffix("_sum")
    return families[family][name, tuple(sorted(labels.items()))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_two_nodes_and_a_worker_each_serve_their_own_figures(
    database_url: str, redis_url: str, tmp_path: Path, small_clip: Path
) -> None:
    env = database_node_env(
        tmp_path,
        database_url,
        LMS_REDIS_URL=redis_url,
        LMS_DB_POOL_MAX=POOL_MAX,
        LMS_TRANSCODE_WORKERS="0",  # the worker transcodes
    )
    port = free_port()
    worker_metrics = f"http://127.0.0.1:{port}/metrics"
    worker_env = env | {
        "LMS_NODE_ID": "w",
        "LMS_TRANSCODE_WORKERS": "1",
        "LMS_METRICS_PORT": str(port),
    }
    await create_admin(env)
    nodes = await start_nodes(env, tmp_path)
    worker = await start_worker(worker_env, tmp_path / "w.log")
    try:
        a, b = nodes["a"], nodes["b"]
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=10) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=10) as on_b,
        ):
            root = await log_in(on_a, *ADMIN)
            learner = await sign_up(on_a, "learner@school.org")
            course = await make_course(on_a, database_url, root, videos=1)
            await enrol(on_a, learner, course)
            played = await on_a.post(
                PROGRESS,
                json={"content_id": course.videos[0], "position": 30, "played": [[0, 30]]},
                headers=learner.auth,
            )
            assert played.status_code == 200, played.text
            for _ in range(2):  # computed and cached on b, then read from b's memory tier
                stats = await on_b.get("/api/v1/dashboard/stats", headers=learner.auth)
                assert stats.status_code == 200, stats.text

            on_node = {name: await scrape(f"{node.url}/metrics") for name, node in nodes.items()}
            for name, families in on_node.items():
                assert set(families) >= NODE_FAMILIES, NODE_FAMILIES - set(families)
                assert value(families, "lms_node_info", node_id=name, role="node") == 1
                assert value(families, "lms_db_pool_max") == int(POOL_MAX)
            # The heartbeat was committed on a, and only there.
            assert value(on_node["a"], "lms_progress_updates_total") == 1
            assert value(on_node["a"], "lms_progress_batch_size_count") == 1
            assert value(on_node["b"], "lms_progress_updates_total") == 0
            assert value(on_node["b"], "lms_progress_batch_size_count") == 0
            # The dashboard read missed and then hit b's memory tier.
            assert value(on_node["b"], "lms_cache_hits_total", tier="memory") >= 1
            assert value(on_node["b"], "lms_cache_misses_total", tier="memory") >= 1
            assert ("lms_cache_hits_total", (("tier", "redis"),)) in on_node["b"][
                "lms_cache_hits_total"
            ]

            # The same figures as JSON: for admins only.
            refused = await on_a.get("/api/v1/monitoring/stats")
            assert refused.status_code == 401
            refused = await on_a.get("/api/v1/monitoring/stats", headers=learner.auth)
            assert refused.status_code == 403
            as_json = await on_a.get("/api/v1/monitoring/stats", headers=root.auth)
            assert as_json.status_code == 200, as_json.text
            assert as_json.json()["node_id"] == "a"
            assert {f["name"] for f in as_json.json()["metrics"]} == set(on_node["a"])

        # A video uploaded through a node and transcoded by the worker: the worker's figures.
        async with signed_in(a.url) as admin:
            await admin.publish(small_clip)

        async def on_worker() -> Families:
            return await scrape(worker_metrics)

        done = await eventually(
            on_worker, lambda f: value(f, "lms_transcode_job_duration_seconds_count") == 1
        )
        assert value(done, "lms_node_info", node_id="w", role="worker") == 1
        assert value(done, "lms_time_to_playable_seconds_count") == 1
        assert 0 < value(done, "lms_time_to_playable_seconds_sum") < 60
        assert value(done, "lms_transcode_realtime_ratio_count") == 1
        assert value(done, "lms_transcode_failures_total", final="false") == 0
        assert value(done, "lms_actor_restarts_total", actor="transcoder_pool") == 0
        assert "lms_http_requests_total" not in done  # a worker serves no API
        async with httpx.AsyncClient(timeout=10) as client:
            elsewhere = await client.get(f"http://127.0.0.1:{port}/api/v1/users/me")
        assert elsewhere.status_code == 404
        # The node that queued it counts the job done (its cached read renews within seconds)
        # and no transcode of its own.
        on_a_now = await eventually(
            lambda: scrape(f"{a.url}/metrics"),
            lambda f: value(f, "lms_transcode_jobs", state="done") == 1,
        )
        assert value(on_a_now, "lms_time_to_playable_seconds_count") == 0
    finally:
        worker.terminate()
        with trio.fail_after(30):
            assert await worker.wait() == 0
        for node in nodes.values():
            assert await node.stop() == 0, node.log()
