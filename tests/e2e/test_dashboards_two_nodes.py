"""Two nodes on one PostgreSQL and one Redis: a write on one node reaches every dashboard read
on the other, and a demoted admin loses their rights on both, through each node's cache.

Each node keeps answers in its own memory tier. A write invalidates their tags in Redis and on
its own node before it answers, and on the other node when the Bus brings the news (within
`BUS_DELAY`): so the other node is asked until its answer is fresh, and fails the test if that
takes longer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import trio

from tests.e2e.nodes import database_node_env, run_cli, start_nodes
from tests.lms.http.conftest import Login, log_in, make_instructor, sign_up
from tests.lms.http.test_progress import PROGRESS, enrol, make_course

pytestmark = pytest.mark.e2e

T = TypeVar("T")

BUS_DELAY = 0.1
DASHBOARD = "/api/v1/dashboard"
ROOT = ("root@school.org", "admin-password")


@asynccontextmanager
async def two_nodes(
    database_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Nodes a and b (`lms serve` child processes) and a client of each; the admin ROOT."""
    env = database_node_env(tmp_path, database_url, LMS_REDIS_URL=redis_url)
    admin = await run_cli("createadmin", "--email", ROOT[0], "--password", ROOT[1], env=env)
    assert admin.returncode == 0, admin.stderr.decode()
    nodes = await start_nodes(env, tmp_path)
    try:
        async with (
            httpx.AsyncClient(base_url=nodes["a"].url, timeout=10) as a,
            httpx.AsyncClient(base_url=nodes["b"].url, timeout=10) as b,
        ):
            yield a, b
    finally:
        for node in nodes.values():
            assert await node.stop() == 0, node.log()


async def fresh_within_bus_delay(ask: Callable[[], Awaitable[T]], fresh: Callable[[T], bool]) -> T:
    """`ask()` again until its answer is `fresh`; fails if that takes longer than BUS_DELAY."""
    started = trio.current_time()
    while True:
        answer = await ask()
        if fresh(answer):
            return answer
        assert trio.current_time() - started < BUS_DELAY, f"still stale: {answer}"


async def read(api: httpx.AsyncClient, who: Login, path: str) -> dict:
    response = await api.get(DASHBOARD + path, headers=who.auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_dashboard_on_one_node_reflects_a_write_made_on_the_other(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with two_nodes(database_url, redis_url, tmp_path) as (a, b):
        root = await log_in(a, *ROOT)
        instructor = await make_instructor(a, root, "teacher@school.org")
        learner = await sign_up(a, "learner@school.org")
        course = await make_course(a, database_url, instructor, videos=1)
        await enrol(a, learner, course)
        analytics = f"/analytics/course/{course.id}"

        def on_b(who: Login, path: str) -> Callable[[], Awaitable[dict]]:
            return lambda: read(b, who, path)

        # Each dashboard read (and cached) on b before the writes.
        assert (await read(b, learner, "/stats"))["watched_seconds"] == 0
        assert (await read(b, learner, "/analytics/progress"))["watched_seconds"] == 0
        assert (await read(b, instructor, analytics))["funnel"][0]["started"] == 0
        before = await read(b, root, "/admin")
        assert (before["users"], before["watched_seconds"]) == (3, 0)

        played = await a.post(
            PROGRESS,
            json={"content_id": course.videos[0], "position": 90, "played": [[0, 90]]},
            headers=learner.auth,
        )
        assert played.status_code == 200, played.text
        await fresh_within_bus_delay(on_b(learner, "/stats"), lambda s: s["watched_seconds"] == 90)
        await fresh_within_bus_delay(
            on_b(learner, "/analytics/progress"),
            lambda c: c["buckets"][-1]["watched_seconds"] == 90,
        )
        await fresh_within_bus_delay(
            on_b(instructor, analytics), lambda c: c["videos"][0]["viewers"] == 1
        )
        await fresh_within_bus_delay(on_b(root, "/admin"), lambda d: d["watched_seconds"] == 90)

        newcomer = await sign_up(a, "newcomer@school.org")  # a registration
        await fresh_within_bus_delay(on_b(root, "/admin"), lambda d: d["users"] == 4)
        await enrol(a, newcomer, course)  # an enrolment
        await fresh_within_bus_delay(on_b(instructor, analytics), lambda c: c["enrolled"] == 2)
        await fresh_within_bus_delay(
            on_b(newcomer, "/stats"), lambda s: s["courses_not_started"] == 1
        )


async def test_a_demoted_admin_is_refused_at_once_where_demoted_and_soon_after_elsewhere(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with two_nodes(database_url, redis_url, tmp_path) as (a, b):
        root = await log_in(a, *ROOT)
        deputy = await sign_up(a, "deputy@school.org")
        promoted = await a.patch(
            f"/api/v1/users/{deputy.user_id}", json={"role": "admin"}, headers=root.auth
        )
        assert promoted.status_code == 200
        deputy = await log_in(a, deputy.email)
        for node in (a, b):  # each node has the deputy's standing cached
            assert (await node.get(DASHBOARD + "/admin", headers=deputy.auth)).status_code == 200

        demoted = await a.patch(
            f"/api/v1/users/{deputy.user_id}", json={"role": "learner"}, headers=root.auth
        )
        assert demoted.status_code == 200
        refused = await a.get(DASHBOARD + "/admin", headers=deputy.auth)
        assert refused.status_code == 401, refused.text
        refused = await fresh_within_bus_delay(
            lambda: b.get(DASHBOARD + "/admin", headers=deputy.auth),
            lambda r: r.status_code == 401,
        )
        assert "revoked" in refused.json()["error"]["message"]
        # A new token carries what the account is now, on either node.
        deputy = await log_in(b, deputy.email)
        for node in (a, b):
            assert (await node.get(DASHBOARD + "/admin", headers=deputy.auth)).status_code == 403
