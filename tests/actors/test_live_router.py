"""LiveRouter: what the WebSocket edges rely on when the node's live layer stops under them."""

from __future__ import annotations

import trio

from actors.bus import Bus
from actors.connection import Connection, Peer
from actors.live_router import LiveRouter


async def test_a_connection_leaving_after_the_live_layer_stopped_is_let_go(
    nursery: trio.Nursery,
) -> None:
    bus = Bus()
    await nursery.start(bus.run)
    router = LiveRouter("a", bus)
    conn = Connection(Peer("a/1", 42, "Ada", "laptop", 7), 8)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as live:
            await live.start(router.run)
            await router.attach(conn)
            await router.join(conn)
            scope.cancel()  # shutdown: the rooms and sessions stop before the edges finish
    await router.leave(conn)  # the edge's way out: nothing left to leave, and no error
    stats = router.statistics()
    assert (stats.rooms.live, stats.sessions.live, stats.connections) == (0, 0, 0)
