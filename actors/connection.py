"""One client's WebSocket as rooms and sessions see it: who is at the other end, a bounded
queue of frames, already encoded, waiting for the edge to send them, and when the client was
last heard from (for `KeepAlive`)."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from proto.frames import Member, Role

SLOW_CLIENT = 1013
"""Close code for a client cut off because its send queue filled up ("try again later")."""

DEFAULT_QUEUE = 256
DEFAULT_KEEPALIVE = 20.0


@dataclass(frozen=True, slots=True)
class Peer:
    """Who holds a connection: fixed for its life."""

    conn: str  # node-unique id, "<node>/<n>"
    user_id: int
    name: str
    device_id: str | None = None
    course_id: int | None = None  # the course room of a progress socket; None: notifications
    role: Role = "learner"  # in that room

    def member(self, content_id: int | None = None) -> Member:
        return Member(self.conn, self.user_id, self.name, self.role, content_id)


class Connection:
    """A peer and its send queue. Rooms and sessions `offer` frames; the edge's writer takes
    them with `next_frames` and sends them as one message.

    Full policy: `offer` never waits. A full queue means the client reads too slowly: the
    connection is cut at once (`close_code` is 1013), what was queued is kept for the edge to
    flush if it can, and every later offer is dropped. The edge closes the socket with that
    code and leaves its room and session; no room ever waits on it.

    A list and one parked task rather than a memory channel: there is one reader (the edge's
    writer) and this is per connection, where a channel's buffers cost kilobytes.

    The edge's reader answers its client's own frames (acks, pongs, errors) itself when the
    writer is idle: `claim`, send, `release`. Frames offered meanwhile wait until `release`, so
    the client still receives everything in the order it was offered.

    `keepalive` is how long the client may stay silent before it is pinged (seconds);
    `heard_at` is when it last sent anything (trio's clock), stamped by the edge with `heard`.
    """

    __slots__ = (
        "_capacity",
        "_claimed",
        "_queue",
        "_waiter",
        "close_code",
        "dropped",
        "heard_at",
        "keepalive",
        "peer",
    )

    def __init__(
        self, peer: Peer, capacity: int = DEFAULT_QUEUE, *, keepalive: float = DEFAULT_KEEPALIVE
    ) -> None:
        self.peer = peer
        self.keepalive = keepalive
        self.heard_at = trio.current_time()
        self._capacity = capacity
        self._queue: list[str] = []
        self._waiter: trio.lowlevel.Task | None = None
        self._claimed = False
        self.close_code: int | None = None
        self.dropped = 0

    @property
    def open(self) -> bool:
        return self.close_code is None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def heard(self) -> None:
        """The client sent something: it is alive."""
        self.heard_at = trio.current_time()

    def offer(self, text: str) -> bool:
        """Queue one encoded frame; False when it was dropped (the connection is cut)."""
        if self.close_code is not None:
            self.dropped += 1
            return False
        if len(self._queue) >= self._capacity:
            self.dropped += 1
            self.close(SLOW_CLIENT)
            return False
        self._queue.append(text)
        self._wake()
        return True

    def close(self, code: int) -> None:
        """Stop taking frames; the edge closes the socket with `code`. Idempotent."""
        if self.close_code is None:
            self.close_code = code
            self._wake()

    async def next_frames(self) -> list[str]:
        """Wait for at least one queued frame and take every frame queued.

        Raises:
          trio.EndOfChannel: the connection is closed and nothing is left to send.
        """
        if self._queue or self.close_code is not None:
            await trio.lowlevel.checkpoint()
        else:
            if self._waiter is not None:
                raise trio.BusyResourceError("another task is already waiting for frames")
            self._waiter = trio.lowlevel.current_task()

            def abort(_: object) -> trio.lowlevel.Abort:
                self._waiter = None
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        if not self._queue:
            raise trio.EndOfChannel
        frames, self._queue = self._queue, []
        return frames

    def claim(self) -> bool:
        """Take the socket for one send of the caller's own, if the writer waits with nothing
        queued (so nothing offered earlier is still unsent); then `release` once sent."""
        if self._waiter is None or self._claimed or self._queue or self.close_code is not None:
            return False
        self._claimed = True
        return True

    def release(self) -> None:
        """The claimed send is done: hand what was offered meanwhile to the writer."""
        self._claimed = False
        if self._queue or self.close_code is not None:
            self._wake()

    def _wake(self) -> None:
        if self._claimed:
            return  # `release` wakes the writer, after the claimed send
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)
