"""UserSession: one user's WebSocket connections on this node (a laptop, a phone, a tablet),
and what reaches the user wherever they are: progress made on another device, announcements
of their courses, their uploads' transcode jobs.

The session subscribes to the user's Bus channel, so a heartbeat stored through node A reaches
the user's phone on node B. Progress is pushed to every other device of the user (never back
to the device that sent it, by `device_id`) on the notification socket and on the progress
socket of that course: the phone resumes where the laptop stopped. A course-wide event
(announcement, job) is sent to the user's connections that are not in that course's room,
which hear it from the room, so every connection hears it once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
import trio

from proto.events import JobChanged, ProgressChanged
from proto.frames import Announcement, Job, Notification, Progress, encode
from proto.live import Announced, LiveMessage, user_channel

from .bus import Bus
from .connection import Connection
from .runtime import RETIRED, ActorStopped, Address, Inbox, MailboxFull, Reply

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class Attach:
    """Take `conn` on, if the user has fewer than the session's `max_connections` here; the
    answer (when asked) says whether it was taken."""

    conn: Connection
    reply: Reply[bool] | None = None


@dataclass(frozen=True, slots=True)
class Detach:
    conn: Connection


@dataclass(frozen=True, slots=True)
class Heard:
    """A message from the user's Bus channel (this node's or another's)."""

    message: LiveMessage


SessionMessage = Attach | Detach | Heard


@dataclass(frozen=True, slots=True)
class SessionStatistics:
    user_id: int
    connections: int
    pushed: int
    cut: int
    missed: int


class UserSession:
    """The live session of one user on this node. Run by the router's registry, keyed by user
    id; retires when it has had no connection and no message for the idle timeout.

    Mailbox full policy: edges `tell` (attach and detach must not be lost); the Bus
    `tell_nowait`s and drops what does not fit, counted in `missed` (the next heartbeat
    carries the newer state anyway).
    """

    # A node holds one per connected user: slots keep each a few hundred bytes smaller.
    __slots__ = (
        "_address",
        "_bus",
        "_connections",
        "_cut",
        "_inbox",
        "_max_connections",
        "_missed",
        "_pushed",
        "user_id",
    )

    def __init__(
        self,
        user_id: int,
        inbox: Inbox[SessionMessage],
        address: Address[SessionMessage],
        *,
        bus: Bus,
        max_connections: int = 20,
    ) -> None:
        self.user_id = user_id
        self._inbox = inbox
        self._address = address
        self._bus = bus
        # Counted on this node: a user's sockets on other nodes have sessions of their own.
        self._max_connections = max_connections
        self._connections: dict[str, Connection] = {}
        self._pushed = 0
        self._cut = 0
        self._missed = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # Started from whichever edge first needed it: that request's log context is not ours.
        structlog.contextvars.clear_contextvars()
        with self._bus.subscribe(user_channel(self.user_id), self._heard):
            task_status.started()
            while True:
                if self._connections:
                    message = await self._inbox.receive()
                else:
                    received = await self._inbox.receive_or_idle()
                    if received is RETIRED:
                        return
                    message = received
                self._handle(message)

    def statistics(self) -> SessionStatistics:
        return SessionStatistics(
            self.user_id, len(self._connections), self._pushed, self._cut, self._missed
        )

    def _handle(self, message: SessionMessage) -> None:
        match message:
            case Attach(conn, reply):
                taken = len(self._connections) < self._max_connections
                if taken and conn.open:
                    self._connections[conn.peer.conn] = conn
                if reply is not None:
                    reply.send(taken)
            case Detach(conn):
                self._connections.pop(conn.peer.conn, None)
            case Heard(ProgressChanged() as event):
                self._push(self._other_devices(event), lambda: encode(Progress.of(event)))
            case Heard(JobChanged() as job):
                self._push(self._outside_room(job.course_id), lambda: encode(Job(job)))
            case Heard(Announced() as a):
                announcement = Announcement(
                    a.course_id, a.id, a.author_id, a.author_name, a.text, a.at
                )
                notification = Notification("announcement", a.course_id, announcement)
                self._push(self._outside_room(a.course_id), lambda: encode(notification))

    def _other_devices(self, event: ProgressChanged) -> list[Connection]:
        """The connections that show `event` (its course's, or notifications) and are not the
        device that made it."""
        return [
            c
            for c in self._connections.values()
            if c.peer.device_id != event.device_id and c.peer.course_id in (None, event.course_id)
        ]

    def _outside_room(self, course_id: int) -> list[Connection]:
        """The connections that do not hear `course_id`'s room (which tells its own members)."""
        return [c for c in self._connections.values() if c.peer.course_id != course_id]

    def _push(self, targets: list[Connection], frame: Callable[[], str]) -> None:
        if not targets:
            return
        text = frame()
        for conn in targets:
            if conn.offer(text):
                self._pushed += 1
            else:
                self._cut += 1
                del self._connections[conn.peer.conn]
                log.info(
                    "client_cut", actor="user_session", conn=conn.peer.conn, code=conn.close_code
                )

    # What the Bus holds of the session: runs in the publisher's task, so it never waits.
    def _heard(self, message: LiveMessage) -> None:
        # Most learners watch on one device, and a heartbeat's progress is then news to none
        # of their connections: not waking the session for it saves a task switch per
        # heartbeat. Only while it waits for a message: an Attach sent before this one, and
        # not handled yet, may add a connection that wants it.
        if (
            isinstance(message, ProgressChanged)
            and self._inbox.waiting
            and not self._other_devices(message)
        ):
            return
        try:
            self._address.tell_nowait(Heard(message))
        except MailboxFull:
            self._missed += 1
        except ActorStopped:
            pass  # retired: its subscription ends as soon as run() returns
