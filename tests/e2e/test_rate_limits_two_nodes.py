"""Two nodes on one Redis count against the same buckets: a limit holds across them, not
once per node."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.nodes import LOOPBACK_RATE_LIMITS, database_node_env, start_nodes

pytestmark = pytest.mark.e2e


async def test_a_limit_is_shared_by_the_nodes_through_redis(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = database_node_env(
        tmp_path,
        database_url,
        LMS_REDIS_URL=redis_url,
        LMS_TRANSCODE_WORKERS="0",
        LMS_RATE_LIMITS=f"{LOOPBACK_RATE_LIMITS},login_per_address=3/600",
    )
    nodes = await start_nodes(env, tmp_path)
    try:
        guess = {"email": "ann@example.org", "password": "wrong-guess"}
        async with (
            httpx.AsyncClient(base_url=nodes["a"].url) as on_a,
            httpx.AsyncClient(base_url=nodes["b"].url) as on_b,
        ):
            statuses = [
                (await client.post("/api/v1/auth/login", json=guess)).status_code
                for client in (on_a, on_b, on_a, on_b)
            ]
            # Per node, each would have taken 3; together they took 3 and refused the fourth.
            assert statuses == [401, 401, 401, 429]
            limited = await on_a.post("/api/v1/auth/login", json=guess)
            assert limited.status_code == 429
            assert 190 <= int(limited.headers["Retry-After"]) <= 200  # a guess per 200 s
    finally:
        for node in nodes.values():
            await node.stop()
