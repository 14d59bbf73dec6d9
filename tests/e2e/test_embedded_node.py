"""`lms serve` with no configuration: its own PostgreSQL, kept alive, and nothing left behind."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.e2e.nodes import node_env, start_node
from tests.services import scratch_dir

pytestmark = pytest.mark.e2e


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not tmp_path: PostgreSQL runs as its own user and must be able to reach the directory.
    with scratch_dir("lms-e2e-embedded-") as root:
        yield root / "data"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def embedded_health(client: httpx.AsyncClient) -> tuple[int, dict]:
    response = await client.get("/api/v1/monitoring/health")
    components = {c["name"]: c for c in response.json()["components"]}
    return response.status_code, components["embedded_postgres"]


async def poll_health(
    client: httpx.AsyncClient, until: Callable[[int, dict], bool]
) -> tuple[int, dict]:
    """Poll the health endpoint, as a load balancer would, until it reports what we expect."""
    with trio.fail_after(30):
        while True:
            status, component = await embedded_health(client)
            if until(status, component):
                return status, component
            await trio.sleep(0.02)


async def test_an_unconfigured_node_runs_for_real_survives_a_postgres_kill_and_cleans_up(
    data_dir: Path, tmp_path: Path
) -> None:
    node = await start_node(node_env(data_dir), tmp_path / "node.log")
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as client:
        assert (await client.get("/health")).status_code == 200

        # The demo course is there, and the usual first steps work with the printed URL.
        login = await client.post(
            "/api/v1/auth/login",
            json={"email": "instructor@demo.lms", "password": "demo-password"},
        )
        teacher = {"Authorization": f"Bearer {login.json()['access_token']}"}
        course = await client.post("/api/v1/courses", json={"title": "Live"}, headers=teacher)
        assert course.status_code == 201
        await client.post(
            "/api/v1/auth/register",
            json={"email": "new@learner.org", "password": "new-learner-1", "name": "New"},
        )
        learner_login = await client.post(
            "/api/v1/auth/login", json={"email": "new@learner.org", "password": "new-learner-1"}
        )
        learner = {"Authorization": f"Bearer {learner_login.json()['access_token']}"}
        enrolled = await client.post(
            f"/api/v1/courses/{course.json()['id']}/enroll", headers=learner
        )
        assert enrolled.status_code == 201

        # Kill the embedded PostgreSQL: health says so, the node restarts it, data survives.
        pid_file = data_dir / "postgres" / "data" / "postmaster.pid"
        first_pid = int(pid_file.read_text().split()[0])
        os.kill(first_pid, signal.SIGKILL)
        await poll_health(client, lambda status, _: status == 503)
        status, component = await poll_health(
            client, lambda _, c: c["ok"] and "restarts 1" in c["detail"]
        )
        assert status == 200
        assert component["state"] == "ready"
        again = await client.get(f"/api/v1/courses/{course.json()['id']}", headers=learner)
        assert again.status_code == 200
        second_pid = int(pid_file.read_text().split()[0])
        assert second_pid != first_pid

    # Ctrl-C stops everything it started.
    assert await node.stop(signal.SIGINT) == 0
    assert not alive(second_pid)
    assert not pid_file.exists()
    events = [json.loads(line)["event"] for line in node.log().splitlines() if line.startswith("{")]
    for event in ("postgres_started", "postgres_died", "postgres_restarting", "node_stopped"):
        assert event in events
