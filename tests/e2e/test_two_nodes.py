"""Two nodes on one PostgreSQL and one Redis serve the same users side by side."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lms.accounts.service import REFRESH_REUSE_GRACE
from tests.e2e.nodes import database_node_env, run_cli, start_nodes
from tests.sql import sql

pytestmark = pytest.mark.e2e


async def test_two_nodes_share_accounts_and_courses(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = database_node_env(tmp_path, database_url, LMS_REDIS_URL=redis_url)
    admin = await run_cli(
        "createadmin", "--email", "root@school.org", "--password", "admin-password", env=env
    )
    assert admin.returncode == 0, admin.stderr.decode()
    assert b"root@school.org" in admin.stdout

    nodes = await start_nodes(env, tmp_path)
    a, b = nodes["a"], nodes["b"]
    assert a.url != b.url

    async with httpx.AsyncClient(base_url=a.url) as on_a, httpx.AsyncClient(base_url=b.url) as on_b:
        for client, name in ((on_a, "a"), (on_b, "b")):
            health = (await client.get("/api/v1/monitoring/health")).json()
            assert health["node_id"] == name
            assert {c["name"] for c in health["components"] if c["ok"]} == {
                "database",
                "actors",
                "media",
                "redis",
                "transcoder",
            }

        login = await on_a.post(
            "/api/v1/auth/login", json={"email": "root@school.org", "password": "admin-password"}
        )
        assert login.status_code == 200
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = await on_b.post("/api/v1/courses", json={"title": "Shared"}, headers=auth)
        assert created.status_code == 201
        seen = await on_a.get(f"/api/v1/courses/{created.json()['id']}", headers=auth)
        assert seen.json()["title"] == "Shared"

        # A refresh token rotated on one node is spent on the other: within the reuse grace it
        # gets the same successor there (a page left mid-refresh), after it the family dies.
        spent = {"refresh_token": login.json()["refresh_token"]}
        refreshed = await on_b.post("/api/v1/auth/refresh", json=spent)
        assert refreshed.status_code == 200
        again = await on_a.post("/api/v1/auth/refresh", json=spent)
        assert again.json()["refresh_token"] == refreshed.json()["refresh_token"]
        await sql(
            database_url,
            "UPDATE refresh_tokens SET rotated_at = rotated_at - make_interval(secs => $1)",
            REFRESH_REUSE_GRACE + 1,
        )
        replayed = await on_a.post("/api/v1/auth/refresh", json=spent)
        assert replayed.status_code == 401

    assert await a.stop() == 0
    assert await b.stop() == 0
