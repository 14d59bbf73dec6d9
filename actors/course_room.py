"""CourseRoom: one course's live room on this node: who is here and what they watch, learners'
progress for the instructors, announcements and transcode jobs; every event numbered.

Theory of operation
-------------------
What the room knows and decides (presence here and on other nodes, pending events and their
coalescing, numbering, history, replay) is `RoomState` in `course_room_state.py`, with no I/O.
This actor is its shell: it holds this node's members' `Connection`s, takes messages from its
mailbox and the course's Bus channel, reads the clock, hands each to the state, and carries out
what the state returns: texts offered to connections, messages published on the Bus.

While events are pending the room sleeps until the tick and then handles everything its
mailbox gathered, in order, before it sends: a busy room wakes once a tick, not once per
message. An idle room wakes for its first message; an announcement, once handled, is sent at
once, with what was pending.

Slow clients: connections are offered frames and never waited on; one whose queue is full is
cut (see `Connection`) and leaves the room like any other.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import structlog
import trio

from proto.frames import Position
from proto.live import LiveMessage, course_channel

from .bus import Bus
from .connection import Connection
from .course_room_state import Delivery, RoomOptions, RoomState
from .runtime import RETIRED, ActorStopped, Address, Inbox, MailboxFull

log = structlog.get_logger()


# Messages to a room carry live handles (connections), so they are plain frozen dataclasses
# here rather than proto Structs: they never leave this process.
@dataclass(frozen=True, slots=True)
class Join:
    """Add a connection and answer it: a snapshot, or what it missed since `since`."""

    conn: Connection
    since: Position | None = None


@dataclass(frozen=True, slots=True)
class Leave:
    conn: Connection


@dataclass(frozen=True, slots=True)
class Watch:
    conn: Connection
    content_id: int | None


@dataclass(frozen=True, slots=True)
class Heard:
    """A message from the course's Bus channel (this node's or another's)."""

    message: LiveMessage


@dataclass(frozen=True, slots=True)
class Rejoined:
    """The link to the other nodes came back: tell the members here to resync (events of
    other nodes may have been lost meanwhile) and exchange presence again."""


RoomMessage = Join | Leave | Watch | Heard | Rejoined


@dataclass(frozen=True, slots=True)
class RoomStatistics:
    course_id: int
    epoch: str
    seq: int
    members: int
    remote_members: int
    cut: int
    missed: int  # Bus messages dropped because the mailbox was full


class CourseRoom:
    """The live room of one course on this node. Run by the router's registry, keyed by
    course id; retires when it has had no member and no message for the idle timeout.

    Mailbox full policy: edges `tell` (wait for room: joins and leaves must not be lost);
    the Bus `tell_nowait`s and a message that does not fit is dropped and counted in `missed`
    (presence heals at the next sync, progress at the next heartbeat).
    """

    def __init__(
        self,
        course_id: int,
        inbox: Inbox[RoomMessage],
        address: Address[RoomMessage],
        *,
        bus: Bus,
        node: str,
        options: RoomOptions,
    ) -> None:
        self.course_id = course_id
        self._inbox = inbox
        self._address = address
        self._bus = bus
        self._channel = course_channel(course_id)
        self._node = node
        self._state = RoomState(course_id, node, self._new_epoch(), options)
        # The same members as the state's, by connection id: the handles to send to.
        self._learners: dict[str, Connection] = {}
        self._instructors: dict[str, Connection] = {}
        self._cut = 0
        self._missed = 0
        # Set by the Bus's callback, cleared by the room: a Rejoined that did not fit in a full
        # mailbox must not be lost (its members would never hear of the hole), so the room
        # also looks at this after every message it handles.
        self._relinked = False
        self._log = log.bind(actor="course_room", course_id=course_id)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # Started from whichever edge first needed it: that request's log context is not ours.
        structlog.contextvars.clear_contextvars()
        state = self._state
        with self._bus.subscribe(self._channel, self._heard, rejoined=self._rejoined):
            self._bus.publish(self._channel, state.query(), here=False)
            task_status.started()
            while True:
                if state.pending:
                    # Events wait for the tick anyway, so what arrives meanwhile waits with
                    # them: under load every batch of heartbeats the writer commits reached
                    # every room, and woke it (ten times a tick) for a few messages each.
                    await trio.sleep_until(min(state.flush_at, state.refresh_at))
                    now = trio.current_time()
                    self._handle_queued(now)
                    self._relink(now)
                    self._on_timer(now)
                    continue
                with trio.move_on_at(state.refresh_at):
                    if self._learners or self._instructors:
                        message = await self._inbox.receive()
                    else:
                        received = await self._inbox.receive_or_idle()
                        if received is RETIRED:
                            return
                        message = received
                    now = trio.current_time()
                    self._handle(message, now)
                    self._handle_queued(now)
                    self._relink(now)
                    continue
                self._on_timer(trio.current_time())

    def _handle_queued(self, now: float) -> None:
        """Handle what else is already queued, without waiting: under load a room wakes with
        several heartbeats waiting, and each wait costs a timer scope and a scheduler pass.
        The timer is looked at again on the next wait."""
        while True:
            try:
                message = self._inbox.receive_nowait()
            except trio.WouldBlock:
                return
            self._handle(message, now)

    def statistics(self) -> RoomStatistics:
        return RoomStatistics(
            course_id=self.course_id,
            epoch=self._state.epoch,
            seq=self._state.seq,
            members=len(self._learners) + len(self._instructors),
            remote_members=self._state.remote_members,
            cut=self._cut,
            missed=self._missed,
        )

    # --- messages -------------------------------------------------------------------------------

    def _handle(self, message: RoomMessage, now: float) -> None:
        match message:
            case Heard(heard):
                out = self._state.heard(heard, now)
                if out is not None:  # most are heartbeats' progress, pending for the tick
                    if isinstance(out, Delivery):
                        self._deliver(out, now)
                    else:
                        self._bus.publish(self._channel, out, here=False)
            case Join(conn, since):
                self._join(conn, since, now)
            case Leave(conn):
                self._leave(conn, now)
            case Watch(conn, content_id):
                moved = self._state.watch(conn.peer.conn, content_id, now)
                if moved is not None:
                    self._bus.publish(self._channel, moved)
            case Rejoined():
                self._relink(now)

    def _join(self, conn: Connection, since: Position | None, now: float) -> None:
        if not conn.open:
            return
        admitted = self._state.join(conn.peer.member(), since, now)
        if admitted.joined is not None:
            self._bus.publish(self._channel, admitted.joined)
        self._deliver(admitted.delivery, now)
        self._members(conn)[conn.peer.conn] = conn
        for text in admitted.answer:
            conn.offer(text)

    def _leave(self, conn: Connection, now: float) -> None:
        left = self._state.leave(conn.peer.conn, now)
        if left is None:
            return
        del self._members(conn)[conn.peer.conn]
        self._bus.publish(self._channel, left)

    def _relink(self, now: float) -> None:
        if not self._relinked:
            return
        self._relinked = False
        epoch = self._new_epoch()
        self._log.info("room_resync", reason="link", epoch=epoch)
        self._deliver(self._state.relink(epoch), now)
        self._bus.publish(self._channel, self._state.query(), here=False)

    def _new_epoch(self) -> str:
        return f"{self._node}-{secrets.token_hex(4)}"

    def _on_timer(self, now: float) -> None:
        if now >= self._state.refresh_at:
            sync = self._state.refresh(now)
            if sync is not None:
                self._bus.publish(self._channel, sync, here=False)
        if now >= self._state.flush_at:
            self._deliver(self._state.flush(), now)

    # --- events out -----------------------------------------------------------------------------

    def _deliver(self, delivery: Delivery | None, now: float) -> None:
        if delivery is None:
            return
        if delivery.instructors is not None:
            self._send(self._instructors, delivery.instructors, now)
        if delivery.learners is not None:
            self._send(self._learners, delivery.learners, now)

    def _send(self, members: dict[str, Connection], text: str, now: float) -> None:
        cut = [conn for conn in members.values() if not conn.offer(text)]
        for conn in cut:
            self._cut += 1
            self._log.info("client_cut", conn=conn.peer.conn, code=conn.close_code)
            self._leave(conn, now)

    def _members(self, conn: Connection) -> dict[str, Connection]:
        return self._instructors if conn.peer.role == "instructor" else self._learners

    # The two callbacks below are what the Bus holds of the room. They run in the publisher's
    # task, so they only put a message in the mailbox (never wait) and count what did not fit.
    def _heard(self, message: LiveMessage) -> None:
        try:
            self._address.tell_nowait(Heard(message))
        except MailboxFull:
            self._missed += 1
        except ActorStopped:
            pass  # retired: its subscription ends as soon as run() returns

    def _rejoined(self) -> None:
        self._relinked = True
        try:
            self._address.tell_nowait(Rejoined())
        except MailboxFull:
            pass  # the room is busy, so it wakes soon and finds `_relinked` set
        except ActorStopped:
            pass
