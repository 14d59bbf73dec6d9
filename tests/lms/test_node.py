"""The node's store and actors, opened as `serve` opens them, without the HTTP server."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from lms.config import Settings
from lms.node import build_health, open_actors, open_store
from lms.store import bridge
from tests.job_queue_loss import lose_the_job_queue

# A crash loop is given up on after the policy's backoffs (0.1 + 0.2 + ... + 1.6 s) and the
# pool's first poll; generous for a loaded machine.
GIVE_UP_DEADLINE = 30.0


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "LMS_DATABASE_URL": database_url,
            "LMS_DATA_DIR": str(tmp_path),
            "LMS_SECRET_KEY": "test-secret-" + "x" * 40,
            "LMS_TRANSCODE_WORKERS": "1",
            "LMS_DB_POOL_MIN": "1",
            "LMS_DB_POOL_MAX": "4",
        }
    )


async def test_readiness_names_a_core_actor_given_up_on_and_the_others_keep_running(
    settings: Settings,
) -> None:
    drain = trio.Event()
    async with (
        bridge.open_bridge(),
        open_store(settings) as store,
        open_actors(settings, store, drain) as actors,
    ):
        health = build_health(settings, store, actors)
        assert (await health.check()).status == "ok"

        await lose_the_job_queue(store.db)
        with trio.fail_after(GIVE_UP_DEADLINE):
            await drain.wait()

        report = await health.check()
        assert report.status == "unavailable"
        [component] = [c for c in report.components if c.name == "actors"]
        assert (component.ok, component.state) == (False, "gave_up")
        assert "gave up on transcoder_pool" in component.detail
        assert [error.name for error in actors.given_up] == ["transcoder_pool"]
        # The node drains with the rest of its actors still serving what is in flight.
        running = {child.name for child in actors.supervisor.statistics().children}
        assert running == {"bus", "progress_writer", "scheduler", "mailer"}
