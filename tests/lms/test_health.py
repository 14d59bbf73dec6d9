"""The transcoder's readiness check on its own, with a real supervisor and real processes: what
a node reports when its pool is not running or holds a worker that has died (the node-level
tests, tests/lms/http/test_health.py, show the healthy pool and a killed worker retried)."""

from __future__ import annotations

import subprocess
import sys

import trio
import trio.testing

from actors.runtime import RestartPolicy, Supervisor
from actors.transcoder import TranscodeFigures
from lms.health import transcode_workers

POOL = "transcoder_pool"
# A second restart is a long way off: the check sees the pool backing off after one crash.
SLOW = RestartPolicy(max_restarts=3, within=60, backoff_initial=30, backoff_max=30)


class Pool:
    """Stands in for the pool actor: runs until told to crash."""

    def __init__(self, crash: trio.Event) -> None:
        self._crash = crash

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await self._crash.wait()
        raise RuntimeError("the pool's queue went away")


async def test_a_running_pool_with_live_workers_is_ready(nursery: trio.Nursery) -> None:
    supervisor = Supervisor("node", policy=SLOW)
    await nursery.start(supervisor.run)
    await supervisor.start_child(POOL, lambda: Pool(trio.Event()))
    figures = TranscodeFigures()
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", "input()"], stdin=subprocess.PIPE
    )
    figures.worker_started(7, process)
    try:
        health = await transcode_workers(supervisor, POOL, figures, slots=2)()
    finally:
        process.kill()
        await process.wait()

    assert (health.ok, health.state) == (True, "ok")
    assert (
        health.detail
        == f"1 of 2 workers busy: pid {process.pid} (job 7); 0 attempts retried, 0 failed"
    )


async def test_a_pool_backing_off_after_a_crash_is_not_ready(nursery: trio.Nursery) -> None:
    supervisor = Supervisor("node", policy=SLOW)
    await nursery.start(supervisor.run)
    crash = trio.Event()
    await supervisor.start_child(POOL, lambda: Pool(crash))
    check = transcode_workers(supervisor, POOL, TranscodeFigures(), slots=1)
    assert (await check()).ok

    crash.set()
    await trio.testing.wait_all_tasks_blocked()

    health = await check()
    assert (health.ok, health.state) == (False, "backing_off")
    assert health.detail.startswith("the pool is backing_off; 0 of 1 workers busy")


async def test_a_pool_that_is_not_supervised_is_not_ready(nursery: trio.Nursery) -> None:
    supervisor = Supervisor("node")
    await nursery.start(supervisor.run)

    health = await transcode_workers(supervisor, POOL, TranscodeFigures(), slots=1)()

    assert (health.ok, health.state) == (False, "stopped")


async def test_a_worker_that_died_unnoticed_is_named(nursery: trio.Nursery) -> None:
    supervisor = Supervisor("node")
    await nursery.start(supervisor.run)
    await supervisor.start_child(POOL, lambda: Pool(trio.Event()))
    figures = TranscodeFigures()
    process = await trio.lowlevel.open_process([sys.executable, "-c", "raise SystemExit(3)"])
    await process.wait()
    figures.worker_started(9, process)  # still held, as by a pool that hung

    health = await transcode_workers(supervisor, POOL, figures, slots=1)()

    assert (health.ok, health.state) == (False, "worker_exited")
    assert health.detail.startswith(f"pid {process.pid} exited with 3; 1 of 1 workers busy")
