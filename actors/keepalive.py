"""KeepAlive: one task that pings every silent client of the node and cuts the dead ones.

A client says how often it wants to be pinged when silent (its keep-alive, `Connection.
keepalive`); the edge stamps `Connection.heard_at` whenever the client sends anything. A
client silent for one keep-alive is sent a `ping` (answering it is hearing from it); one
silent for two is cut with 1011, and the edge closes its socket.

Theory of operation
-------------------
Each watched connection sits in a heap by the time it is next due: heard + one keep-alive.
Every `TICK` the watcher takes the connections now due and looks at what they did since:

- heard from again: due again one keep-alive after that;
- silent one keep-alive: pinged, and due again at two;
- silent two: cut, and no longer watched.

So a connection that talks costs one heap entry per keep-alive period and nothing per
message. (A timer per socket cost a deadline scope for every message written and a
cancellation delivered to every socket every period: a tenth of the node's CPU at 5,000
sockets.) Times are late by at most a tick. A connection let go (`forget`) is skipped when
its entry comes due, at most two keep-alives later.
"""

from __future__ import annotations

import heapq
import itertools

import trio

from proto.frames import ServerPing, encode

from .connection import Connection

KEEPALIVE_TIMEOUT = 1011
"""Close code for a client silent for two keep-alive periods (an unexpected condition)."""

# How late a ping or a cut may be; keep-alives are whole seconds (1 to 300).
TICK = 0.25


class KeepAlive:
    """Start with ``nursery.start_soon(keepalive.run)``; `watch` and `forget` at any time.

    Owns the heap and the set of watched connections; the connections' `heard_at` is written
    by their edges and only read here.
    """

    def __init__(self, tick: float = TICK) -> None:
        self._tick = tick
        self._watched: set[Connection] = set()
        # (due, order, connection): the order breaks ties so connections are never compared.
        self._due: list[tuple[float, int, Connection]] = []
        self._order = itertools.count()

    def watch(self, conn: Connection) -> None:
        """Ping `conn` when it falls silent, cut it when it stays so; from now on."""
        self._watched.add(conn)
        self._push(conn.heard_at + conn.keepalive, conn)

    def forget(self, conn: Connection) -> None:
        self._watched.discard(conn)

    @property
    def watched(self) -> int:
        return len(self._watched)

    async def run(self) -> None:
        while True:
            await trio.sleep(self._tick)
            self._sweep(trio.current_time())

    def _sweep(self, now: float) -> None:
        due = self._due
        while due and due[0][0] <= now:
            _, _, conn = heapq.heappop(due)
            if conn not in self._watched:
                continue
            silent = now - conn.heard_at
            if silent < conn.keepalive:
                self._push(conn.heard_at + conn.keepalive, conn)
            elif silent < 2 * conn.keepalive:
                conn.offer(encode(ServerPing(now)))
                self._push(conn.heard_at + 2 * conn.keepalive, conn)
            else:
                conn.close(KEEPALIVE_TIMEOUT)
                self._watched.discard(conn)

    def _push(self, at: float, conn: Connection) -> None:
        heapq.heappush(self._due, (at, next(self._order), conn))
