"""`lms serve` with no configuration: its own PostgreSQL, kept alive, and nothing left behind; a
demo lecture to watch, which its banner names."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from lms.demo import DEMO_PASSWORD, INSTRUCTOR_EMAIL, LEARNER_EMAIL
from tests.e2e.nodes import BANNER, NodeProcess, node_env, start_cli, start_node
from tests.polling import eventually
from tests.services import scratch_dir

pytestmark = pytest.mark.e2e

# The banner's last line when the demo course is there.
LIVE_LINE = b"  live: "
# Making the lecture and transcoding it take seconds; generous, for a loaded CI machine.
PLAYABLE_DEADLINE = 90.0


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
        # Ready again once every component is: the transcoder pool, which crashed without its
        # queue, comes back after its restart backoff, a little after PostgreSQL.
        _, component = await poll_health(
            client, lambda status, c: status == 200 and c["ok"] and "restarts 1" in c["detail"]
        )
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


@asynccontextmanager
async def announced_node(
    data_dir: Path, log_path: Path
) -> AsyncIterator[tuple[NodeProcess, dict[str, str]]]:
    """An unconfigured node started as `make run` starts it, and its banner's named lines
    (`"watch"` -> its text); stopped with Ctrl-C on leaving."""
    process, said = await start_cli("serve", node_env(data_dir), log_path, ready=LIVE_LINE)
    assert process.stdout is not None
    await process.stdout.aclose()
    first, *rest = said.decode().splitlines()
    node = NodeProcess(process, first.split(BANNER.decode(), 1)[1].strip(), log_path)
    banner = {label.strip(): text.strip() for label, text in (line.split(":", 1) for line in rest)}
    try:
        yield node, banner
    finally:
        with trio.CancelScope(shield=True):
            await node.stop(signal.SIGINT)


def named_id(banner: dict[str, str], label: str, prefix: str) -> int:
    """The id ending the URL on the banner's `label` line, which must start with `prefix`."""
    url = banner[label].split()[0]
    assert url.startswith(prefix), banner
    return int(url.removeprefix(prefix))


async def sign_in(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    login = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD}
    )
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def jobs_of(client: httpx.AsyncClient, auth: dict[str, str], content_id: int) -> list[dict]:
    jobs = (await client.get("/api/v1/jobs", headers=auth)).json()
    return [job for job in jobs if job["content_id"] == content_id]


async def test_a_newcomer_watches_the_demo_lecture_the_banner_names_and_a_restart_makes_no_other(
    data_dir: Path, tmp_path: Path
) -> None:
    async with announced_node(data_dir, tmp_path / "first.log") as (node, banner):
        lecture_id = named_id(banner, "watch", f"{node.url}/watch/")
        course_id = named_id(banner, "live", f"{node.url}/live/")
        assert banner["jobs"] == f"{node.url}/admin/jobs"
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as client:
            # The demo learner sees the lecture in the course the live room is for, and it
            # becomes playable: the node made it and its own transcoder pool took it.
            learner = await sign_in(client, LEARNER_EMAIL)
            contents = await client.get(f"/api/v1/courses/{course_id}/contents", headers=learner)
            assert lecture_id in [content["id"] for content in contents.json()]

            async def manifest() -> httpx.Response:
                url = f"/api/v1/stream/video/{lecture_id}/manifest"
                return await client.get(url, headers=learner)

            answer = await eventually(
                manifest,
                lambda r: r.status_code != 200 or r.json()["status"] in ("ready", "failed"),
                within=PLAYABLE_DEADLINE,
            )
            playable = answer.json()
            assert playable.get("status") == "ready", playable
            master = await client.get(playable["hls_master"], headers=learner)
            assert master.status_code == 200
            assert master.text.startswith("#EXTM3U")
            assert {r["label"] for r in playable["renditions"]} == {"480p", "360p"}
            for label in ("watch", "live", "jobs"):
                page = await client.get(banner[label].split()[0])
                assert page.status_code == 200, label

            teacher = await sign_in(client, INSTRUCTOR_EMAIL)
            assert [job["state"] for job in await jobs_of(client, teacher, lecture_id)] == ["done"]

    # A second `make run` finds the lecture made: the same URLs, and no other job.
    async with announced_node(data_dir, tmp_path / "second.log") as (node, again):
        assert named_id(again, "watch", f"{node.url}/watch/") == lecture_id
        assert named_id(again, "live", f"{node.url}/live/") == course_id
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as client:
            teacher = await sign_in(client, INSTRUCTOR_EMAIL)
            assert len(await jobs_of(client, teacher, lecture_id)) == 1
        assert "demo_lecture_queued" not in node.log()
