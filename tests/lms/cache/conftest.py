from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio

from tests.services import RunningRedis, start_redis

WAIT = 10.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[list[RunningRedis]]:
    """A Redis of this test's own, to stop, pause and start again (the list holds the current
    one; `tests.redis_restart.restart_redis` appends the next)."""
    servers = [start_redis(tmp_path)]
    yield servers
    servers[-1].stop()


async def wait_until(condition: Callable[[], bool]) -> None:
    """For states that announce themselves with no event (a link or tier coming back): look
    again every 10 ms, up to the deadline."""
    with trio.fail_after(WAIT):
        while not condition():  # noqa: ASYNC110 (polled state, no event to wait on)
            await trio.sleep(0.01)
