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

Silence is counted only while the node was awake. A node paused as a whole (SIGSTOP, a VM
stall, a long collector pass) hears nobody meanwhile: its clients' frames wait in the kernel,
and without care every client with a short keep-alive would be due to be cut on waking,
before its edge had even read the frames it sent. The watcher knows it was away, as it wakes
later than the tick it asked for: a wake more than a tick late records a stall (from when it
should have woken to now), and a connection's silence is the time since it was heard less the
stalls since then. A client heard just before a 5 s pause with a 1 s keep-alive is then due
for a ping a moment after waking, not cut; one silent for two periods of awake time still is.
Stalls are kept while they can matter (`STALL_MEMORY`).

So a connection that talks costs one heap entry per keep-alive period and nothing per
message. (A timer per socket cost a deadline scope for every message written and a
cancellation delivered to every socket every period: a tenth of the node's CPU at 5,000
sockets.) Times are late by at most a tick. A connection let go (`forget`) is skipped when
its entry comes due, at most two keep-alives later.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque

import trio

from proto.frames import ServerPing, encode

from .connection import Connection

KEEPALIVE_TIMEOUT = 1011
"""Close code for a client silent for two keep-alive periods (an unexpected condition)."""

# How late a ping or a cut may be; keep-alives are whole seconds (1 to 300).
TICK = 0.25

STALL_MEMORY = 2 * 300.0
"""How long a stall is remembered: two of the longest keep-alives (`proto.frames.KeepAlive`),
after which every connection heard before it has been pinged or cut."""
MAX_STALLS = 1024
"""Stalls remembered at most (an overloaded node is late at every tick): forgetting the oldest
only counts more silence, as before stalls were counted."""


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
        # (start, end) of the times the watcher was away, oldest first.
        self._stalls: deque[tuple[float, float]] = deque(maxlen=MAX_STALLS)

    def watch(self, conn: Connection) -> None:
        """Ping `conn` when it falls silent, cut it when it stays so; from now on."""
        self._watched.add(conn)
        self._push(conn.heard_at + conn.keepalive, conn)

    def forget(self, conn: Connection) -> None:
        self._watched.discard(conn)

    @property
    def watched(self) -> int:
        return len(self._watched)

    @property
    def stalls(self) -> int:
        """Stalls remembered now (the node was paused: see the theory of operation)."""
        return len(self._stalls)

    async def run(self) -> None:
        awake = trio.current_time()
        while True:
            await trio.sleep(self._tick)
            now = trio.current_time()
            self._note_stall(awake + self._tick, now)
            awake = now
            self._sweep(now)

    def _note_stall(self, expected: float, now: float) -> None:
        if now - expected > self._tick:
            self._stalls.append((expected, now))
        while self._stalls and self._stalls[0][1] < now - STALL_MEMORY:
            self._stalls.popleft()

    def _silence(self, conn: Connection, now: float) -> float:
        """How long `conn` has been silent while the watcher was awake."""
        heard = conn.heard_at
        silent = now - heard
        for start, end in reversed(self._stalls):
            if end <= heard:
                break  # and so did every older one
            silent -= end - max(start, heard)
        return silent

    def _sweep(self, now: float) -> None:
        due = self._due
        while due and due[0][0] <= now:
            _, _, conn = heapq.heappop(due)
            if conn not in self._watched:
                continue
            silent = self._silence(conn, now)
            if silent < conn.keepalive:
                self._push(now + conn.keepalive - silent, conn)
            elif silent < 2 * conn.keepalive:
                conn.offer(encode(ServerPing(now)))
                self._push(now + 2 * conn.keepalive - silent, conn)
            else:
                conn.close(KEEPALIVE_TIMEOUT)
                self._watched.discard(conn)

    def _push(self, at: float, conn: Connection) -> None:
        heapq.heappush(self._due, (at, next(self._order), conn))
