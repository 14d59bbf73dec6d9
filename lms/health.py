"""The node's view of its own health.

Liveness says the process answers at all: it is read from memory, with no I/O, so a load
balancer may ask every second. Readiness runs one check per component, on demand, each with a
deadline, and says whether the node can do its job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

import proto
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
