"""LiveRouter: the node's live layer in one place. It is the `EventSink` that producers (the
progress writer, the transcoder pool) publish to, it runs the course rooms and user sessions
and the connections' keep-alive, and it is what the WebSocket edges join, leave and announce
through.

Routing is by Bus channel, so one path serves one node and many:

    ProgressChanged -> course:<course>  (rooms: instructors' live view)
                    -> user:<user>      (sessions: the user's other devices)
    JobChanged      -> course:<course>  (rooms: instructors)
                    -> user:<uploader>  (sessions: the uploader, wherever they are)
    Announced       -> live:all         (every node: its room of the course, and the sessions
                                         of the audience it holds)

A room or session subscribes to its channel for as long as it runs, so a node hears only the
courses and users it has clients for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import structlog
import trio

from proto.events import Event, JobChanged, ProgressChanged
from proto.frames import Position
from proto.live import BROADCAST, Announced, LiveMessage, course_channel, user_channel

from .bus import Bus
from .connection import Connection
from .course_room import CourseRoom, Join, Leave, RoomMessage, RoomOptions, Watch
from .keepalive import KeepAlive
from .runtime import ActorStopped, Inbox, Registry, RegistryStatistics, SupervisorGaveUp
from .user_session import Attach, Detach, SessionMessage, UserSession

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class RouterOptions:
    room: RoomOptions = field(default_factory=RoomOptions)
    room_mailbox: int = 4096
    session_mailbox: int = 256
    # How long a room outlives its last member (keeping its history for reconnecting
    # clients), and a session its last connection.
    room_idle: float = 120.0
    session_idle: float = 30.0
    # A user's sockets open at once on this node; the next is refused (LMS_MAX_SOCKETS_PER_USER).
    max_sockets_per_user: int = 20
    # How long attaching waits for the user's session to answer.
    attach_timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class RouterStatistics:
    rooms: RegistryStatistics
    sessions: RegistryStatistics
    events: int
    connections: int  # watched for keep-alive: every socket attached and not yet left


class LiveRouter:
    """Start with ``await nursery.start(router.run)``; the Bus must be running already (or
    start in the same nursery: nothing is published before `run` has started)."""

    def __init__(self, node: str, bus: Bus, options: RouterOptions = RouterOptions()) -> None:
        self.node = node
        self._bus = bus
        self._options = options
        self._rooms: Registry[int, RoomMessage] = Registry(
            "room",
            self._room,
            capacity=options.room_mailbox,
            idle_timeout=options.room_idle,
            on_give_up=self._gave_up,
        )
        self._sessions: Registry[int, SessionMessage] = Registry(
            "session",
            self._session,
            capacity=options.session_mailbox,
            idle_timeout=options.session_idle,
            on_give_up=self._gave_up,
        )
        self._keepalive = KeepAlive()
        self._events = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self._rooms.run)
            await nursery.start(self._sessions.run)
            nursery.start_soon(self._keepalive.run)
            with self._bus.subscribe(BROADCAST, self._broadcast):
                task_status.started()
                await trio.sleep_forever()

    # --- the EventSink ------------------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        """Route a producer's event to the rooms and sessions of every node. Never waits on
        them (the Bus only queues), so a producer is never slowed by a client."""
        self._events += 1
        match event:
            case ProgressChanged():
                self._bus.publish(course_channel(event.course_id), event)
                self._bus.publish(user_channel(event.user_id), event)
            case JobChanged():
                self._bus.publish(course_channel(event.course_id), event)
                self._bus.publish(user_channel(event.uploader_id), event)

    # --- what the edges do --------------------------------------------------------------------

    async def attach(self, conn: Connection) -> bool:
        """Give the connection to its user's session (every socket has one), and watch that it
        stays alive; False, and nothing done, when the user has `max_sockets_per_user` open
        on this node already.

        Raises:
          AskTimeout, ActorStopped: the session did not answer.
        """
        attach = partial(Attach, conn)
        timeout = self._options.attach_timeout
        if not await self._sessions.ask(conn.peer.user_id, attach, timeout=timeout):
            return False
        self._keepalive.watch(conn)
        return True

    async def join(self, conn: Connection, since: Position | None = None) -> None:
        """Put a progress socket in its course's room; the room answers on the connection."""
        await self._rooms.tell(_course(conn), Join(conn, since))

    async def watch(self, conn: Connection, content_id: int | None) -> None:
        await self._rooms.tell(_course(conn), Watch(conn, content_id))

    async def leave(self, conn: Connection) -> None:
        """Take the connection out of its room and session (on every way out of the edge).
        Idempotent; a no-op once the node's actors have stopped (shutdown)."""
        self._keepalive.forget(conn)
        try:
            if conn.peer.course_id is not None:
                await self._rooms.tell(conn.peer.course_id, Leave(conn))
            await self._sessions.tell(conn.peer.user_id, Detach(conn))
        except ActorStopped:
            # The actor has stopped, or its registry has (RegistryStopped, only when the node
            # shuts down): either way no room or session is left for the connection to leave.
            pass

    def announce(self, announced: Announced) -> None:
        self._bus.publish(BROADCAST, announced)

    def statistics(self) -> RouterStatistics:
        return RouterStatistics(
            self._rooms.statistics(),
            self._sessions.statistics(),
            events=self._events,
            connections=self._keepalive.watched,
        )

    # --- internals ----------------------------------------------------------------------------

    def _broadcast(self, message: LiveMessage) -> None:
        if isinstance(message, Announced):
            self._bus.deliver_local(course_channel(message.course_id), message)
            for user_id in message.audience:
                self._bus.deliver_local(user_channel(user_id), message)

    # The registries call these to start an actor for a key. The key's entry (with its open
    # mailbox) is registered before the factory runs, so `get` returns the actor's own address,
    # which it needs to subscribe itself to the Bus.
    def _room(self, course_id: int, inbox: Inbox[RoomMessage]) -> CourseRoom:
        address = self._rooms.get(course_id)
        return CourseRoom(
            course_id, inbox, address, bus=self._bus, node=self.node, options=self._options.room
        )

    def _session(self, user_id: int, inbox: Inbox[SessionMessage]) -> UserSession:
        return UserSession(
            user_id,
            inbox,
            self._sessions.get(user_id),
            bus=self._bus,
            max_connections=self._options.max_sockets_per_user,
        )

    def _gave_up(self, error: SupervisorGaveUp) -> None:
        # One broken room must not stop the node: the supervisor has logged why; the next
        # client of that key starts a fresh actor.
        log.error("live_actor_abandoned", actor=error.name)


def _course(conn: Connection) -> int:
    if conn.peer.course_id is None:
        raise ValueError("only a course's progress socket joins its room")
    return conn.peer.course_id
