"""The API explorer (`/docs`) in headless Chromium against a real node, on a machine whose browser
cannot reach anything but the node: everything the page needs comes from the node."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio

from tests.e2e.nodes import SECRET, node_env, start_node

pytestmark = pytest.mark.e2e

DEADLINE = 60.0


async def test_the_api_explorer_renders_the_operations_without_internet_access(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = node_env(
        tmp_path, LMS_DATABASE_URL=database_url, LMS_REDIS_URL=redis_url, LMS_SECRET_KEY=SECRET
    )
    node = await start_node(env, tmp_path / "node.log")
    try:
        with trio.fail_after(DEADLINE):
            browser = await trio.run_process(
                [sys.executable, "-m", "tests.e2e.docs_page_driver", f"{node.url}/docs"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    finally:
        assert await node.stop() == 0, node.log()
    assert browser.returncode == 0, browser.stderr.decode()
    seen = json.loads(browser.stdout)
    assert seen["left_the_machine"] == []
    assert "POST /api/v1/auth/login" in seen["operations"], seen
    assert "GET /api/v1/courses" in seen["operations"], seen
    assert seen["failed"] == []
    assert seen["errors"] == []
    assert seen["csp_violations"] == []
