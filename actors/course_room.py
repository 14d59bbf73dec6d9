"""CourseRoom: one course's live room on this node: who is here and what they watch, learners'
progress for the instructors, announcements and transcode jobs; every event numbered.

Theory of operation
-------------------
A room holds this node's members of the course (their `Connection`s) and a replica of the
other nodes' members, kept by the presence messages every node publishes on the course's Bus
channel. Everything that changes the room becomes an event; events wait in `pending` for the
next tick (coalesced: a learner's progress on a content keeps only its latest value) and are
then numbered, encoded once, kept in a short history and sent: instructors get every event,
learners only announcements, each connection one message per tick. While events are pending
the room sleeps until the tick and then handles everything its mailbox gathered, in order,
before it sends: a busy room wakes once a tick, not once per message. An idle room wakes for
its first message; an announcement, once handled, is sent at once, with what was pending.

Recovery: every event carries `(epoch, seq)`. The epoch names this incarnation of the room on
this node; seq counts its events. A client that subscribes with its last pair gets the events
it missed from the history of its audience, or `resync` and a fresh snapshot when the history
no longer reaches back or the epoch is not this room's (another node, a restarted room).

Slow clients: connections are offered frames and never waited on; one whose queue is full is
cut (see `Connection`) and leaves the room like any other.
"""

from __future__ import annotations

import math
import secrets
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
import structlog
import trio

from proto.events import JobChanged, ProgressChanged
from proto.frames import (
    Announcement,
    Job,
    LearnerProgress,
    Member,
    Out,
    Position,
    Presence,
    Progress,
    Resync,
    Snapshot,
    batch,
    encode,
)
from proto.live import (
    Announced,
    Joined,
    Left,
    LiveMessage,
    Moved,
    PresenceSync,
    course_channel,
)

from .bus import Bus
from .connection import Connection
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
    """The link to the other nodes came back: exchange presence again."""


RoomMessage = Join | Leave | Watch | Heard | Rejoined


@dataclass(frozen=True, slots=True)
class RoomOptions:
    """Tuning of every room. `tick`: how long events wait to be sent together.
    `history`/`learner_history`: events kept for replay, per audience. `presence_refresh`:
    how often a room with members repeats its presence to other nodes; a node silent for
    three periods is forgotten."""

    # An instructor's view moves four times a second. Every instructor socket costs the node
    # one message per tick (~0.2 ms of CPU each, whatever it carries), and a tick of 0.1 s sent
    # 2.5 times as many for a difference nobody watching progress bars sees.
    tick: float = 0.25
    history: int = 1024
    learner_history: int = 128
    presence_refresh: float = 30.0


@dataclass(frozen=True, slots=True)
class RoomStatistics:
    course_id: int
    epoch: str
    seq: int
    members: int
    remote_members: int
    cut: int
    missed: int  # Bus messages dropped because the mailbox was full


@dataclass(slots=True)
class _Local:
    conn: Connection
    content_id: int | None = None

    @property
    def member(self) -> Member:
        return self.conn.peer.member(self.content_id)


@dataclass(slots=True)
class _Node:
    """What the room knows of another node's members, and when it last heard from it."""

    members: dict[str, Member] = field(default_factory=dict)
    heard_at: float = 0.0


class _History:
    """The last `size` events of one audience, to replay, and the last seq that fell out."""

    __slots__ = ("events", "floor")

    def __init__(self, size: int) -> None:
        self.events: deque[tuple[int, str]] = deque(maxlen=size)
        self.floor = 0

    def add(self, seq: int, text: str) -> None:
        if len(self.events) == self.events.maxlen:
            self.floor = self.events[0][0]
        self.events.append((seq, text))

    def since(self, seq: int) -> list[str] | None:
        """Events after `seq`, or None when some of them are no longer kept."""
        if seq < self.floor:
            return None
        return [text for s, text in self.events if s > seq]


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
        options: RoomOptions = RoomOptions(),
    ) -> None:
        self.course_id = course_id
        self._inbox = inbox
        self._address = address
        self._bus = bus
        self._node = node
        self._options = options
        self._channel = course_channel(course_id)
        self._epoch = f"{node}-{secrets.token_hex(4)}"
        self._seq = 0
        self._learners: dict[str, _Local] = {}
        self._instructors: dict[str, _Local] = {}
        self._remote: dict[str, _Node] = {}
        self._progress: dict[int, LearnerProgress] = {}
        # Events waiting for the tick; a learner's progress on a content is keyed so that a
        # newer value replaces the older one (and moves to the end, keeping event order).
        self._pending: dict[object, tuple[Out, bool]] = {}
        self._flush_at = math.inf
        self._refresh_at = math.inf
        self._history = _History(options.history)
        self._learner_history = _History(options.learner_history)
        self._cut = 0
        self._missed = 0
        self._log = log.bind(actor="course_room", course_id=course_id)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # Started from whichever edge first needed it: that request's log context is not ours.
        structlog.contextvars.clear_contextvars()
        with self._bus.subscribe(self._channel, self._heard, rejoined=self._rejoined):
            self._sync_presence(query=True)
            task_status.started()
            while True:
                if self._pending:
                    # Events wait for the tick anyway, so what arrives meanwhile waits with
                    # them: under load every batch of heartbeats the writer commits reached
                    # every room, and woke it (ten times a tick) for a few messages each.
                    await trio.sleep_until(min(self._flush_at, self._refresh_at))
                    self._handle_queued()
                    self._on_timer()
                    continue
                with trio.move_on_at(self._refresh_at):
                    if self._learners or self._instructors:
                        message = await self._inbox.receive()
                    else:
                        message = await self._inbox.receive_or_idle()
                        if message is RETIRED:
                            return
                    self._handle(message)
                    self._handle_queued()
                    continue
                self._on_timer()

    def _handle_queued(self) -> None:
        """Handle what else is already queued, without waiting: under load a room wakes with
        several heartbeats waiting, and each wait costs a timer scope and a scheduler pass.
        The timer is looked at again on the next wait."""
        while True:
            try:
                message = self._inbox.receive_nowait()
            except trio.WouldBlock:
                return
            self._handle(message)

    def statistics(self) -> RoomStatistics:
        return RoomStatistics(
            course_id=self.course_id,
            epoch=self._epoch,
            seq=self._seq,
            members=len(self._learners) + len(self._instructors),
            remote_members=sum(len(n.members) for n in self._remote.values()),
            cut=self._cut,
            missed=self._missed,
        )

    # --- messages -------------------------------------------------------------------------------

    def _handle(self, message: RoomMessage) -> None:
        match message:
            case Heard(heard):
                self._on_heard(heard)
            case Join(conn, since):
                self._join(conn, since)
            case Leave(conn):
                self._leave(conn)
            case Watch(conn, content_id):
                self._watch(conn, content_id)
            case Rejoined():
                self._sync_presence(query=True)

    def _join(self, conn: Connection, since: Position | None) -> None:
        if not conn.open:
            return
        members = self._instructors if conn.peer.role == "instructor" else self._learners
        local = members.get(conn.peer.conn)
        if local is None:
            local = _Local(conn)
            self._queue(Presence(self.course_id, "join", local.member))
            self._bus.publish(self._channel, Joined(self.course_id, self._node, local.member))
            if self._refresh_at == math.inf:
                self._refresh_at = trio.current_time() + self._options.presence_refresh
        # Everything up to this join (itself included) is numbered and sent to the others
        # first, so the answer is exact; the newcomer learns of its own join from the answer.
        self._flush()
        members[conn.peer.conn] = local
        self._answer(conn, since)

    def _answer(self, conn: Connection, since: Position | None) -> None:
        instructor = conn.peer.role == "instructor"
        if since is not None:
            history = self._history if instructor else self._learner_history
            missed = self._replay(since, history)
            if missed is not None:
                if missed:
                    conn.offer(batch(missed))
                return
            reason = "epoch" if since.epoch != self._epoch else "history"
            conn.offer(encode(Resync(self.course_id, self._epoch, self._seq, reason)))
        online = list(self._everyone()) if instructor else []
        learners = list(self._progress.values()) if instructor else []
        conn.offer(encode(Snapshot(self.course_id, self._epoch, self._seq, online, learners)))

    def _replay(self, since: Position, history: _History) -> list[str] | None:
        if since.epoch != self._epoch or since.seq > self._seq:
            return None
        return history.since(since.seq)

    def _leave(self, conn: Connection) -> None:
        members = self._instructors if conn.peer.role == "instructor" else self._learners
        local = members.pop(conn.peer.conn, None)
        if local is None:
            return
        self._queue(Presence(self.course_id, "leave", local.member))
        self._bus.publish(self._channel, Left(self.course_id, self._node, local.member))

    def _watch(self, conn: Connection, content_id: int | None) -> None:
        members = self._instructors if conn.peer.role == "instructor" else self._learners
        local = members.get(conn.peer.conn)
        if local is None or local.content_id == content_id:
            return
        local.content_id = content_id
        self._queue(Presence(self.course_id, "watch", local.member))
        self._bus.publish(self._channel, Moved(self.course_id, self._node, local.member))

    def _on_heard(self, message: LiveMessage) -> None:
        match message:
            case ProgressChanged():
                self._progress[message.user_id] = LearnerProgress(
                    message.user_id,
                    message.content_id,
                    message.position,
                    message.watched_seconds,
                    message.coverage,
                    message.completed,
                    message.duration,
                )
                key = ("progress", message.user_id, message.content_id)
                self._pending.pop(key, None)  # the newest goes last, in event order
                self._queue(Progress.of(message), key=key)
            case JobChanged():
                self._queue(Job(message), key=("job", message.job_id))
            case Announced():
                announcement = Announcement(
                    self.course_id,
                    message.id,
                    message.author_id,
                    message.author_name,
                    message.text,
                    message.at,
                )
                self._queue(announcement, learners=True)
                self._flush()
            case Joined(node=node) | Moved(node=node) if node != self._node:
                self._remote_node(node).members[message.member.conn] = message.member
                event = "join" if isinstance(message, Joined) else "watch"
                self._queue(Presence(self.course_id, event, message.member))
            case Left(node=node) if node != self._node:
                if self._remote_node(node).members.pop(message.member.conn, None) is not None:
                    self._queue(Presence(self.course_id, "leave", message.member))
            case PresenceSync(node=node) if node != self._node:
                self._replace_node(node, message.members)
                for learner in message.learners:
                    # Only what this room has not heard of: its own view is as new as any.
                    if learner.user_id not in self._progress:
                        self._progress[learner.user_id] = learner
                        self._queue(Progress.latest(self.course_id, learner))
                if message.query and (self._learners or self._instructors or self._progress):
                    self._sync_presence(query=False, learners=True)

    # --- presence across nodes ------------------------------------------------------------------

    def _remote_node(self, node: str) -> _Node:
        known = self._remote.get(node)
        if known is None:
            known = self._remote[node] = _Node()
        known.heard_at = trio.current_time()
        return known

    def _replace_node(self, node: str, members: Iterable[Member]) -> None:
        known = self._remote_node(node)
        new = {m.conn: m for m in members}
        self._queue_differences(known.members, new)
        known.members = new

    def _queue_differences(self, old: dict[str, Member], new: dict[str, Member]) -> None:
        for conn, member in old.items():
            if conn not in new:
                self._queue(Presence(self.course_id, "leave", member))
        for conn, member in new.items():
            before = old.get(conn)
            if before is None:
                self._queue(Presence(self.course_id, "join", member))
            elif before != member:
                self._queue(Presence(self.course_id, "watch", member))

    def _sync_presence(self, *, query: bool, learners: bool = False) -> None:
        members = [local.member for local in self._locals()]
        known = list(self._progress.values()) if learners else []
        sync = PresenceSync(self.course_id, self._node, members, query=query, learners=known)
        self._bus.publish(self._channel, sync, here=False)

    def _expire_nodes(self, now: float) -> None:
        silent_for = 3 * self._options.presence_refresh
        for node, known in list(self._remote.items()):
            if now - known.heard_at > silent_for:
                del self._remote[node]
                self._queue_differences(known.members, {})

    # --- events out -----------------------------------------------------------------------------

    def _queue(self, frame: Out, *, learners: bool = False, key: object = None) -> None:
        self._pending[key if key is not None else object()] = (frame, learners)
        if self._flush_at == math.inf:
            self._flush_at = trio.current_time() + self._options.tick

    def _on_timer(self) -> None:
        now = trio.current_time()
        if now >= self._refresh_at:
            self._expire_nodes(now)
            if self._learners or self._instructors:
                self._sync_presence(query=False)
                self._refresh_at = now + self._options.presence_refresh
            else:
                self._refresh_at = math.inf
        if now >= self._flush_at:
            self._flush()

    def _flush(self) -> None:
        """Number, encode (once), remember and send every pending event."""
        self._flush_at = math.inf
        if not self._pending:
            return
        everyone: list[str] = []
        learners: list[str] = []
        for frame, to_learners in self._pending.values():
            self._seq += 1
            text = encode(msgspec.structs.replace(frame, epoch=self._epoch, seq=self._seq))
            self._history.add(self._seq, text)
            everyone.append(text)
            if to_learners:
                self._learner_history.add(self._seq, text)
                learners.append(text)
        self._pending.clear()
        if self._instructors:
            self._send(self._instructors, batch(everyone))
        if learners and self._learners:
            self._send(self._learners, batch(learners))

    def _send(self, members: dict[str, _Local], text: str) -> None:
        cut = [local.conn for local in members.values() if not local.conn.offer(text)]
        for conn in cut:
            self._cut += 1
            self._log.info("client_cut", conn=conn.peer.conn, code=conn.close_code)
            self._leave(conn)

    # --- helpers --------------------------------------------------------------------------------

    def _locals(self) -> Iterable[_Local]:
        yield from self._instructors.values()
        yield from self._learners.values()

    def _everyone(self) -> Iterable[Member]:
        for local in self._locals():
            yield local.member
        for known in self._remote.values():
            yield from known.members.values()

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
        try:
            self._address.tell_nowait(Rejoined())
        except (MailboxFull, ActorStopped):
            self._missed += 1
