"""deploy/compose.yaml and compose.prod.yaml: every service running the LMS image has what it
needs, only nginx is public, and a release override covers every service that builds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.deploy_files import (
    DEPLOY,
    LMS_IMAGE,
    MEDIA_VOLUME,
    lms_services,
    load_compose,
    services,
    serving_nodes,
)


def test_compose_files_are_compose_mappings() -> None:
    for name in ("compose.yaml", "compose.prod.yaml"):
        assert isinstance(load_compose(name)["services"], dict), name


def test_every_service_running_the_lms_image_loads_env_and_shares_the_media_volume() -> None:
    found = lms_services()
    assert {"migrate", "lms1", "lms2", "worker"} <= set(found)
    for name, service in found.items():
        env_files = service.get("env_file")
        env_files = [env_files] if isinstance(env_files, str) else env_files
        assert ".env" in (env_files or []), f"{name} does not load .env"
        assert MEDIA_VOLUME in service.get("volumes", []), f"{name} lacks {MEDIA_VOLUME}"


def test_worker_serves_its_metrics_to_the_compose_network_only() -> None:
    worker = services()["worker"]
    assert worker["command"] == ["worker"]
    port = worker["environment"]["LMS_METRICS_PORT"]
    assert port in [str(p) for p in worker.get("expose", [])]
    assert "ports" not in worker


def test_only_nginx_listens_beyond_the_hosts_loopback() -> None:
    published = {name: s["ports"] for name, s in services().items() if "ports" in s}
    assert published.pop("nginx"), "nginx publishes no port"
    assert {"prometheus", "grafana"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every address"


def test_grafana_takes_its_password_from_env_and_admits_no_anonymous_user() -> None:
    environment = services()["grafana"]["environment"]
    assert environment["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_third_party_images_are_pinned_to_a_version() -> None:
    for name, service in services().items():
        image = service.get("image", "")
        if image.startswith(LMS_IMAGE):
            continue
        _, _, tag = image.rpartition(":")
        assert re.fullmatch(r"v?\d+(\.\d+)*", tag), f"{name}: {image} is not pinned to a version"


def test_release_override_runs_a_tagged_image_for_every_service_that_builds() -> None:
    builds = {name for name, service in services().items() if "build" in service}
    release = services("compose.prod.yaml")
    assert set(release) == builds
    for name, service in release.items():
        assert service["image"].startswith(f"{LMS_IMAGE}${{LMS_IMAGE_TAG:?"), name
        # `!reset null`: the override drops the build, so no tag is ever built from the checkout.
        assert service.get("build", "kept") is None, name


def _compose_plugin() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    version = subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=30, check=False
    )
    return version.returncode == 0


@pytest.mark.skipif(not _compose_plugin(), reason="no `docker compose` plugin on this machine")
def test_docker_compose_accepts_both_files(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy, ignore=shutil.ignore_patterns(".env"))
    shutil.copy(deploy / "env.example", deploy / ".env")
    for files in (["compose.yaml"], ["compose.yaml", "compose.prod.yaml"]):
        arguments = [a for f in files for a in ("-f", f)]
        checked = subprocess.run(
            ["docker", "compose", *arguments, "config", "-q"],
            cwd=deploy,
            # What env.example leaves for the operator to fill in.
            env=os.environ
            | {
                "LMS_IMAGE_TAG": "test",
                "LMS_MEDIA_KEYS": "k1:" + "0" * 64,
                "GRAFANA_ADMIN_PASSWORD": "test",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert checked.returncode == 0, f"{files}: {checked.stderr}"


def test_nginx_container_has_every_file_its_config_reads() -> None:
    """lms.conf reads its includes and certificate under /etc/nginx/lms/: each must be mounted
    (media_keys.conf is written at start by media-keys.sh, itself mounted as an entrypoint)."""
    nginx = services()["nginx"]
    mounted = [volume.split(":")[1] for volume in nginx["volumes"]]
    assert "/docker-entrypoint.d/40-lms-media-keys.sh" in mounted
    read = set(
        re.findall(r"(/etc/nginx/lms/[^\s;]+);", (DEPLOY / "nginx" / "lms.conf").read_text())
    )
    assert read, "lms.conf reads nothing under /etc/nginx/lms/"
    missing = sorted(
        path
        for path in read - {"/etc/nginx/lms/media_keys.conf"}
        if not any(path == target or path.startswith(f"{target}/") for target in mounted)
    )
    assert not missing, f"compose.yaml mounts nothing at {missing} in the nginx container"


def test_nginx_sends_requests_to_every_node_and_nothing_else() -> None:
    upstream = re.search(
        r"upstream lms \{(.*?)\}", (DEPLOY / "nginx" / "lms.conf").read_text(), re.S
    )
    assert upstream, "lms.conf has no `upstream lms`"
    servers = set(re.findall(r"^\s*server\s+([\w.-]+):8000\b", upstream.group(1), re.M))
    assert servers == serving_nodes()
