"""A real node paused as a whole (SIGSTOP for 5 s, as a VM stall does) and resumed: its clients
did nothing wrong, so none is cut for the silence the pause made; a client that really stops
answering is still cut, within two keep-alives of the node being awake."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.e2e.nodes import database_node_env, start_node
from tests.live_client import NOTIFICATIONS, LiveClient, live_socket
from tests.lms.http.conftest import sign_up

pytestmark = pytest.mark.e2e

KEEPALIVE = 1.0  # the shortest a client may ask for: pinged after 1 s of silence, cut after 2
PAUSE = 5.0
KEEPALIVE_TIMEOUT = 1011


@dataclass
class Watched:
    """A client reading everything the node sends (answering pings unless told not to)."""

    client: LiveClient
    pings: list[float] = field(default_factory=list)
    close_code: int | None = None
    closed: trio.Event = field(default_factory=trio.Event)
    _pinged: trio.Event = field(default_factory=trio.Event)

    async def read(self) -> None:
        try:
            while True:
                if (await self.client.receive())["type"] == "ping":
                    self.pings.append(trio.current_time())
                    self._pinged.set()
                    self._pinged = trio.Event()
        except ConnectionClosed as closed:
            self.close_code = closed.reason.code
            self.closed.set()
            self._pinged.set()

    async def pinged_after(self, moment: float) -> None:
        """Return once pinged after `moment`, or closed."""
        while not any(at > moment for at in self.pings) and not self.closed.is_set():
            await self._pinged.wait()


async def test_a_paused_node_cuts_no_client_that_did_nothing_wrong_and_still_cuts_a_dead_one(
    database_url: str, tmp_path: Path
) -> None:
    env = database_node_env(tmp_path, database_url, LMS_TRANSCODE_WORKERS="0")
    node = await start_node(env, tmp_path / "node.log")
    try:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as api:
            user = await sign_up(api, "paused@x.org")
        async with (
            live_socket(node.url, NOTIFICATIONS, user.access_token, keepalive=KEEPALIVE) as c1,
            live_socket(node.url, NOTIFICATIONS, user.access_token, keepalive=KEEPALIVE) as c2,
            live_socket(node.url, NOTIFICATIONS, user.access_token, keepalive=KEEPALIVE) as c3,
            live_socket(node.url, NOTIFICATIONS, user.access_token, keepalive=KEEPALIVE) as dies,
            trio.open_nursery() as nursery,
        ):
            healthy = [Watched(c) for c in (c1, c2, c3)]
            dead = Watched(dies)
            for watched in (*healthy, dead):
                nursery.start_soon(watched.read)
            with trio.fail_after(5):  # the node pings them all, they answer: all is well
                for watched in (*healthy, dead):
                    await watched.pinged_after(0)

            dies.answer_pings = False  # from now on it only reads
            node.process.send_signal(signal.SIGSTOP)
            try:
                await trio.sleep(PAUSE)  # the fault itself: the node does not run for 5 s
            finally:
                node.process.send_signal(signal.SIGCONT)
            resumed = trio.current_time()

            with trio.fail_after(2 * KEEPALIVE + 2):
                await dead.closed.wait()
            cut_after = trio.current_time() - resumed
            # The others lived through another silence since: pinged, answered, still here.
            with trio.fail_after(2 * KEEPALIVE + 2):
                for watched in healthy:
                    await watched.pinged_after(resumed + cut_after)
            assert [w.close_code for w in healthy] == [None, None, None]
            assert dead.close_code == KEEPALIVE_TIMEOUT
            assert cut_after < 2 * KEEPALIVE + 1  # two keep-alives awake, plus the ticks
            nursery.cancel_scope.cancel()
    finally:
        await node.stop()
