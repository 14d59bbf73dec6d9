"""The node's view of its own health: one check per component, run on demand with a deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from proto.api import ComponentHealth, Health

Check = Callable[[], Awaitable[ComponentHealth]]
CHECK_TIMEOUT = 2.0


class NodeHealth:
    """Components register a check; `check()` runs them all concurrently, each under a deadline,
    so one hung dependency makes its component unhealthy rather than the health endpoint hang."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._checks: dict[str, Check] = {}

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
