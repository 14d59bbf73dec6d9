"""The node's view of its own health.

Liveness says the process answers at all: it is read from memory, with no I/O, so a load
balancer may ask every second. Readiness runs one check per component, on demand, each with a
deadline, and says whether the node can do its job.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

import proto
from actors.runtime import ChildState, Supervisor
from actors.transcoder import TranscodeFigures
from proto.api import ComponentHealth, Health

Check = Callable[[], Awaitable[ComponentHealth]]
CHECK_TIMEOUT = 2.0


class NodeHealth:
    """`alive` is the liveness answer, already encoded. Components register a check; `check()`
    runs them all concurrently, each under a deadline, so one hung dependency makes its
    component unhealthy rather than the readiness endpoint hang."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._checks: dict[str, Check] = {}
        # Encoded once: liveness names the node and checks nothing.
        self.alive = proto.encode(Health("ok", node_id, []))

    def register(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def check(self) -> Health:
        results: dict[str, ComponentHealth] = {}

        async def run(name: str, check: Check) -> None:
            with trio.move_on_after(CHECK_TIMEOUT):
                try:
                    results[name] = await check()
                except Exception as exc:
                    results[name] = ComponentHealth(name, False, "error", str(exc))
                return
            results[name] = ComponentHealth(
                name, False, "timeout", f"no answer in {CHECK_TIMEOUT}s"
            )

        async with trio.open_nursery() as nursery:
            for name, check in self._checks.items():
                nursery.start_soon(run, name, check)
        components = [results[name] for name in self._checks]
        status = "ok" if all(c.ok for c in components) else "unavailable"
        return Health(status, self.node_id, components)


def media_volume(media_dir: Path, min_free_bytes: int) -> Check:
    """The `media` check: a probe file can be created (and removed) on the volume, and it has
    more than `min_free_bytes` free. A node that cannot write there would take uploads and
    transcodes only to fail them half-way.

    The file system is asked in a thread it may be abandoned in: a hung volume (an NFS server
    gone) times the check out instead of hanging readiness."""

    async def check() -> ComponentHealth:
        try:
            free = await trio.to_thread.run_sync(_probe, media_dir, abandon_on_cancel=True)
        except OSError as exc:
            return ComponentHealth("media", False, "not_writable", f"{media_dir}: {exc}")
        detail = f"{free} bytes free, at least {min_free_bytes} needed"
        if free < min_free_bytes:
            return ComponentHealth("media", False, "low_space", detail)
        return ComponentHealth("media", True, "ok", detail)

    return check


def _probe(media_dir: Path) -> int:
    """Write and remove a small file in `media_dir` (made if missing, as an upload would);
    return the bytes free there for an unprivileged writer."""
    media_dir.mkdir(parents=True, exist_ok=True)
    # Unique, so nodes sharing the volume (and concurrent checks) never meet.
    probe = media_dir / f".health-{uuid.uuid4().hex}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"ok")
    finally:
        os.close(fd)
        probe.unlink()
    stats = os.statvfs(media_dir)
    return stats.f_bavail * stats.f_frsize


def transcode_workers(
    supervisor: Supervisor, name: str, figures: TranscodeFigures, slots: int
) -> Check:
    """The `transcoder` check, for a node that runs transcode workers: its pool (child `name`
    of `supervisor`) is running, and every worker process its attempts hold is alive. A
    worker that dies fails its attempt and the job is retried in a new one: the detail counts
    those, and lists the workers running now."""

    async def check() -> ComponentHealth:
        stats = figures.statistics()
        busy = ", ".join(f"pid {w.pid} (job {w.job_id})" for w in stats.workers)
        detail = (
            f"{len(stats.workers)} of {slots} workers busy{': ' + busy if busy else ''}; "
            f"{stats.retried} attempts retried, {stats.failed} failed"
        )
        states = [c.state for c in supervisor.statistics().children if c.name == name]
        if states != [ChildState.RUNNING]:
            state = states[0].value if states else "stopped"
            return ComponentHealth("transcoder", False, state, f"the pool is {state}; {detail}")
        dead = [w for w in stats.workers if w.exit_code is not None]
        if dead:
            exits = ", ".join(f"pid {w.pid} exited with {w.exit_code}" for w in dead)
            return ComponentHealth("transcoder", False, "worker_exited", f"{exits}; {detail}")
        return ComponentHealth("transcoder", True, "ok", detail)

    return check
