"""How `lms worker` stops: as a node does, in order, when an actor it cannot do without is given
up on, with one line for the operator and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from tests.databases import open_database
from tests.e2e.nodes import SECRET, log_events, node_env, start_worker
from tests.job_queue_loss import assert_stopped_for_the_lost_queue, lose_the_job_queue

pytestmark = pytest.mark.e2e

# Long enough for the pool's crash loop (a few seconds) to be given up on.
GIVE_UP_DEADLINE = 60.0


async def test_a_worker_whose_transcoder_pool_is_given_up_on_stops_and_says_why_in_one_line(
    database_url: str, tmp_path: Path
) -> None:
    env = node_env(
        tmp_path, LMS_DATABASE_URL=database_url, LMS_SECRET_KEY=SECRET, LMS_TRANSCODE_WORKERS="1"
    )
    log_path = tmp_path / "worker.log"
    worker = await start_worker(env, log_path)
    try:
        async with open_database(database_url) as db:
            await lose_the_job_queue(db)
        with trio.fail_after(GIVE_UP_DEADLINE):
            code = await worker.wait()
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    log = log_path.read_text()
    assert code == 1, log

    assert_stopped_for_the_lost_queue(log, "worker")
    assert log_events(log)[-1]["event"] == "worker_stopped"
