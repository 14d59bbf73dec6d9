from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

import pytest
import structlog
import trio
from structlog.typing import EventDict


class Service(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...


@pytest.fixture
def logs() -> Iterator[list[EventDict]]:
    """Every structlog event emitted during the test, as dicts."""
    with structlog.testing.capture_logs() as captured:
        yield captured


@pytest.fixture
def start(nursery: trio.Nursery) -> Callable[[Service], Awaitable[Any]]:
    """Start a service (supervisor, registry) in the test's nursery; it is cancelled at the end."""

    async def start_service(service: Service) -> Any:
        return await nursery.start(service.run)

    return start_service
