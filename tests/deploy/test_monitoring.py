"""Prometheus, its alerts and the Grafana dashboard agree with the compose stack and with the
metric names the code exposes (issue 23's contract): a renamed metric or service would
otherwise show as an empty panel or an alert that can never fire."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.deploy_files import DEPLOY, load_yaml, services, serving_nodes

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "lms.json"

# Every lms_* family the nodes and the worker expose, by type (issue 23's contract).
METRICS = {
    "lms_node_info": "info",
    "lms_http_requests_total": "counter",
    "lms_http_request_duration_seconds": "histogram",
    "lms_http_response_bytes_total": "counter",
    "lms_websocket_connections": "gauge",
    "lms_websocket_connections_total": "counter",
    "lms_websocket_closes_total": "counter",
    "lms_websocket_frames_total": "counter",
    "lms_actor_mailbox_depth": "gauge",
    "lms_actor_mailbox_capacity": "gauge",
    "lms_actor_restarts_total": "counter",
    "lms_live_rooms": "gauge",
    "lms_live_sessions": "gauge",
    "lms_transcode_jobs": "gauge",
    "lms_transcode_job_duration_seconds": "histogram",
    "lms_transcode_realtime_ratio": "histogram",
    "lms_transcode_failures_total": "counter",
    "lms_time_to_playable_seconds": "histogram",
    "lms_progress_updates_total": "counter",
    "lms_progress_batch_size": "histogram",
    "lms_progress_commit_seconds": "histogram",
    "lms_cache_hits_total": "counter",
    "lms_cache_misses_total": "counter",
    "lms_mail_sent_total": "counter",
    "lms_mail_retried_total": "counter",
    "lms_mail_dead_total": "counter",
    "lms_db_pool_connections": "gauge",
    "lms_db_pool_max": "gauge",
    "lms_bridge_call_seconds": "histogram",
    "lms_slow_queries_total": "counter",
}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
METRIC_NAME = re.compile(r"\blms_[a-z_]+")


def exposed_series(name: str) -> bool:
    """Whether a series name in a query is one of METRICS' (a histogram's _bucket/_sum/_count)."""
    if name in METRICS:
        return True
    family, _, suffix = name.rpartition("_")
    return f"_{suffix}" in HISTOGRAM_SERIES and METRICS.get(family) == "histogram"


def dashboard_panels() -> Iterator[dict[str, Any]]:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml("alerts.yml")["groups"] for rule in group["rules"]]


def scrape_jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in load_yaml("prometheus.yml")["scrape_configs"]}


def job_hosts(job: dict[str, Any]) -> set[str]:
    """The hosts a job reaches: static targets (host:port, or a URL that blackbox probes) and
    names resolved by DNS."""
    hosts = set()
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            hosts.add(urlsplit(target if "://" in target else f"//{target}").hostname)
    for dns in job.get("dns_sd_configs", []):
        hosts.update(dns["names"])
    return hosts


def test_prometheus_scrapes_only_compose_services() -> None:
    known = set(services()) | {"localhost"}  # Prometheus itself
    for name, job in scrape_jobs().items():
        unknown = job_hosts(job) - known
        assert not unknown, f"job {name} targets {unknown}, which compose.yaml does not define"


def test_prometheus_scrapes_every_node_and_probes_its_readiness() -> None:
    jobs = scrape_jobs()
    nodes = serving_nodes()
    assert nodes
    assert job_hosts(jobs["lms-node"]) == nodes
    assert job_hosts(jobs["lms-readiness"]) == nodes
    for target in jobs["lms-readiness"]["static_configs"][0]["targets"]:
        assert urlsplit(target).path == "/api/v1/monitoring/health"
    probes = jobs["lms-readiness"]["relabel_configs"][-1]["replacement"]
    assert probes.partition(":")[0] in services()


def test_prometheus_scrapes_the_worker_on_its_metrics_port() -> None:
    (dns,) = scrape_jobs()["lms-worker"]["dns_sd_configs"]
    assert dns["names"] == ["worker"]
    assert str(dns["port"]) == services()["worker"]["environment"]["LMS_METRICS_PORT"]


def test_prometheus_scrapes_every_15_seconds_and_loads_the_mounted_alerts() -> None:
    config = load_yaml("prometheus.yml")
    assert config["global"]["scrape_interval"] == "15s"
    mounted = {
        volume.split(":")[1] for volume in services()["prometheus"]["volumes"] if ":" in volume
    }
    assert "/etc/prometheus/alerts.yml" in mounted
    assert set(config["rule_files"]) <= mounted


@pytest.mark.parametrize(
    ("source", "queries"),
    [("dashboard", dashboard_queries), ("alerts", lambda: [r["expr"] for r in alert_rules()])],
)
def test_queries_name_only_metrics_the_code_exposes(source: str, queries: Any) -> None:
    found = queries()
    assert found, f"no queries read from the {source}"
    unknown = sorted(
        {name for query in found for name in METRIC_NAME.findall(query) if not exposed_series(name)}
    )
    assert not unknown, f"the {source} queries metrics nothing exposes: {unknown}"


def test_every_alert_says_how_urgent_and_what_to_do() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"page", "warn"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_dashboard_panels_read_the_provisioned_prometheus() -> None:
    (datasource,) = load_yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    for panel in dashboard_panels():
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_grafana_loads_dashboards_from_where_compose_mounts_them() -> None:
    (provider,) = load_yaml("grafana/provisioning/dashboards/lms.yml")["providers"]
    mounts = dict(volume.split(":")[:2] for volume in services()["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


# The constructors collectors build families with, and the type each exposes.
FAMILY_TYPES = {
    "CounterMetricFamily": "counter",
    "GaugeMetricFamily": "gauge",
    "HistogramMetricFamily": "histogram",
    "InfoMetricFamily": "info",
    "histogram_family": "histogram",  # lms/observability/metrics.py
}


def families_in_code() -> dict[str, str]:
    """Each metric family a collector under lms/ builds, by the name Prometheus sees
    (prometheus-client adds `_total` to a counter's name and `_info` to an info's), with its
    type."""
    families = {}
    for path in sorted((ROOT / "lms").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            func = node.func
            constructor = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            # lms/observability/requests.py `_family(CounterMetricFamily, "name", ...)`
            if isinstance(first, ast.Name) and first.id in FAMILY_TYPES and node.args[1:]:
                constructor, first = first.id, node.args[1]
            if constructor in FAMILY_TYPES and isinstance(first, ast.Constant):
                kind = FAMILY_TYPES[constructor]
                name = str(first.value)
                if kind == "counter":
                    name = name.removesuffix("_total") + "_total"
                elif kind == "info":
                    name += "_info"
                families[name] = kind
    return families


def test_the_code_exposes_every_metric_the_dashboard_and_alerts_rely_on() -> None:
    defined = families_in_code()
    wrong = {name: defined.get(name) for name, kind in METRICS.items() if defined.get(name) != kind}
    assert not wrong, f"collectors under lms/ define these as (None: not at all): {wrong}"
