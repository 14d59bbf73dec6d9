"""RoomState: what a course room knows and decides, with no I/O. `actors/course_room.py` runs
it: that actor owns the connections, the mailbox, the clock and the Bus, and carries out what
this returns.

Theory of operation
-------------------
Sans-io, like h11's connection: every input is a method call with plain data and the time it
happened (`now`, read by the caller: nothing here reads a clock), and every call returns what
must go out, as plain data: a `Delivery` (one text for this node's instructors, one for its
learners), a Bus message to publish, or the frames answering a newcomer. Two deadlines say when
to call back: `flush_at` (pending events are due: call `flush`) and `refresh_at` (presence is
due to be repeated: call `refresh`); `math.inf` when nothing is due.

Events: whatever changes the room becomes an event, pending until the tick (the first one sets
`flush_at`). Coalesced: a learner's progress on a content keeps only its latest value, moved to
the end so events stay in order; a job keeps only its latest state, in place. `flush` numbers
the pending events, encodes each once (with the room's epoch and its seq), keeps it in the
history of its audiences and returns one text per audience: instructors get every event,
learners only announcements. A join and an announcement flush at once.

Recovery: every event carries `(epoch, seq)`. The epoch names this incarnation of the room on
this node; seq counts its events. A client that joins with its last pair gets the events it
missed from the history of its audience, or `resync` and a fresh snapshot when the history no
longer reaches back or the epoch is not this room's (another node, a restarted room). A join
flushes everything before answering (its own join included), so the answer is exact.

Lost link: while the link to the other nodes was down, events of theirs may have been lost
(published while this node was not subscribed, or dropped from a full queue), and nothing in
this node's numbering shows it: its seq would go on from 22 to 23 over the hole. So when the
link comes back, `relink` starts a new epoch (a client coming back later with a position of the
old one gets `resync` too, as the history no longer holds everything) and tells every member
here at once: `resync` (reason "link") and a fresh snapshot, after anything still pending.

Presence: this node's members are kept by connection id; each other node's are replicated from
its `Joined`/`Moved`/`Left` and replaced wholesale by its `PresenceSync`, whose differences
become events. A node not heard from for three refresh periods is forgotten, and its members
leave.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import msgspec

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
from proto.live import Announced, Joined, Left, LiveMessage, Moved, PresenceSync


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
class Delivery:
    """The events of one flush for this node's members, each text encoded once and shared by
    every connection of its audience: `instructors` (every event) and `learners` (the
    announcements); None where nobody here is to get anything."""

    instructors: str | None
    learners: str | None


@dataclass(frozen=True, slots=True)
class Admitted:
    """What a join gives, in the order to carry it out: `joined` to publish (None: that
    connection was already in), the `delivery` of everything up to the join to the members
    already here, then `answer`, the newcomer's frames, each a message of its own."""

    joined: Joined | None
    delivery: Delivery | None
    answer: list[str]


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


class RoomState:
    """One course room's state on node `node`, in its incarnation `epoch` (see the module's
    theory of operation). Not thread-safe, never waits; each method is one step."""

    def __init__(
        self, course_id: int, node: str, epoch: str, options: RoomOptions = RoomOptions()
    ) -> None:
        self.course_id = course_id
        self._node = node
        self._epoch = epoch
        self._options = options
        self._seq = 0
        self._instructors: dict[str, Member] = {}
        self._learners: dict[str, Member] = {}
        self._remote: dict[str, _Node] = {}
        self._progress: dict[int, LearnerProgress] = {}
        # Events waiting for the tick; a learner's progress on a content is keyed so that a
        # newer value replaces the older one (and moves to the end, keeping event order).
        self._pending: dict[object, tuple[Out, bool]] = {}
        self._flush_at = math.inf
        self._refresh_at = math.inf
        self._history = _History(options.history)
        self._learner_history = _History(options.learner_history)

    @property
    def epoch(self) -> str:
        return self._epoch

    @property
    def seq(self) -> int:
        """The seq of the last event numbered (0: none yet)."""
        return self._seq

    @property
    def pending(self) -> int:
        """Events waiting for the next flush."""
        return len(self._pending)

    @property
    def flush_at(self) -> float:
        """When the pending events are due (`math.inf`: none pending)."""
        return self._flush_at

    @property
    def refresh_at(self) -> float:
        """When presence is due to be repeated (`math.inf`: no member here since the last)."""
        return self._refresh_at

    @property
    def members(self) -> int:
        return len(self._instructors) + len(self._learners)

    @property
    def remote_members(self) -> int:
        return sum(len(known.members) for known in self._remote.values())

    # --- this node's members --------------------------------------------------------------------

    def join(self, member: Member, since: Position | None, now: float) -> Admitted:
        """A connection of this node joins: a snapshot, or what it missed since `since`."""
        members = self._instructors if member.role == "instructor" else self._learners
        joined = None
        if member.conn not in members:
            self._queue(Presence(self.course_id, "join", member), now)
            joined = Joined(self.course_id, self._node, member)
            if self._refresh_at == math.inf:
                self._refresh_at = now + self._options.presence_refresh
        # Everything up to this join (itself included) is numbered and goes to the others
        # first, so the answer is exact; the newcomer learns of its own join from the answer.
        delivery = self.flush()
        if joined is not None:
            members[member.conn] = member
        return Admitted(joined, delivery, self._answer(member.role == "instructor", since))

    def leave(self, conn: str, now: float) -> Left | None:
        """A connection of this node leaves; the message to publish, None if it was not in."""
        member = self._instructors.pop(conn, None)
        if member is None:
            member = self._learners.pop(conn, None)
            if member is None:
                return None
        self._queue(Presence(self.course_id, "leave", member), now)
        return Left(self.course_id, self._node, member)

    def watch(self, conn: str, content_id: int | None, now: float) -> Moved | None:
        """A connection of this node watches another content (or none); the message to
        publish, None if nothing changed."""
        members = self._instructors if conn in self._instructors else self._learners
        member = members.get(conn)
        if member is None or member.content_id == content_id:
            return None
        member = members[conn] = msgspec.structs.replace(member, content_id=content_id)
        self._queue(Presence(self.course_id, "watch", member), now)
        return Moved(self.course_id, self._node, member)

    def replay(self, since: Position, *, instructor: bool) -> list[str] | None:
        """The events after `since` for one audience, or None when they cannot all be
        replayed: another epoch, a seq this room never reached, or a history that no longer
        reaches back."""
        if since.epoch != self._epoch or since.seq > self._seq:
            return None
        return (self._history if instructor else self._learner_history).since(since.seq)

    def _answer(self, instructor: bool, since: Position | None) -> list[str]:
        answer: list[str] = []
        if since is not None:
            missed = self.replay(since, instructor=instructor)
            if missed is not None:
                return [batch(missed)] if missed else []
            reason = "epoch" if since.epoch != self._epoch else "history"
            answer.append(encode(Resync(self.course_id, self._epoch, self._seq, reason)))
        online = self._online() if instructor else []
        learners = list(self._progress.values()) if instructor else []
        answer.append(encode(Snapshot(self.course_id, self._epoch, self._seq, online, learners)))
        return answer

    def relink(self, epoch: str) -> Delivery:
        """The link to the other nodes came back: what was pending goes first, then the room
        starts epoch `epoch` (an empty history) and every member here gets `resync` and a
        snapshot, so nobody takes the numbering for a complete record of what happened."""
        flushed = self.flush()
        self._epoch = epoch
        self._history = _History(self._options.history)
        self._learner_history = _History(self._options.learner_history)
        resync = encode(Resync(self.course_id, epoch, self._seq, "link"))
        to_instructors = to_learners = None
        if self._instructors:
            snapshot = Snapshot(
                self.course_id, epoch, self._seq, self._online(), list(self._progress.values())
            )
            to_instructors = batch([*_texts(flushed, True), resync, encode(snapshot)])
        if self._learners:
            snapshot = Snapshot(self.course_id, epoch, self._seq, [], [])
            to_learners = batch([*_texts(flushed, False), resync, encode(snapshot)])
        return Delivery(to_instructors, to_learners)

    # --- the course's channel -------------------------------------------------------------------

    def heard(self, message: LiveMessage, now: float) -> Delivery | PresenceSync | None:
        """A message on the course's Bus channel, from this node or another. Returns what to
        send at once: a `Delivery` (an announcement), or a `PresenceSync` to publish to the
        other nodes (the answer to one's query)."""
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
                self._queue(Progress.of(message), now, key=key)
            case JobChanged():
                self._queue(Job(message), now, key=("job", message.job_id))
            case Announced():
                announcement = Announcement(
                    self.course_id,
                    message.id,
                    message.author_id,
                    message.author_name,
                    message.text,
                    message.at,
                )
                self._queue(announcement, now, learners=True)
                return self.flush()
            case Joined(node=node) | Moved(node=node) if node != self._node:
                self._remote_node(node, now).members[message.member.conn] = message.member
                event: Literal["join", "watch"] = "join" if isinstance(message, Joined) else "watch"
                self._queue(Presence(self.course_id, event, message.member), now)
            case Left(node=node) if node != self._node:
                if self._remote_node(node, now).members.pop(message.member.conn, None) is not None:
                    self._queue(Presence(self.course_id, "leave", message.member), now)
            case PresenceSync(node=node) if node != self._node:
                self._replace_node(node, message.members, now)
                for learner in message.learners:
                    # Only what this room has not heard of: its own view is as new as any.
                    if learner.user_id not in self._progress:
                        self._progress[learner.user_id] = learner
                        self._queue(Progress.latest(self.course_id, learner), now)
                if message.query and (self._instructors or self._learners or self._progress):
                    return self._sync(query=False, learners=True)
        return None

    def query(self) -> PresenceSync:
        """This node's members for the other nodes, asking for theirs: when the room starts
        and when the link to the other nodes comes back."""
        return self._sync(query=True)

    # --- time -----------------------------------------------------------------------------------

    def refresh(self, now: float) -> PresenceSync | None:
        """Due at `refresh_at`: forget the nodes silent for three periods, and, while this node
        has members, the presence to repeat to the others (then again in one period)."""
        silent_for = 3 * self._options.presence_refresh
        for node, known in list(self._remote.items()):
            if now - known.heard_at > silent_for:
                del self._remote[node]
                self._queue_differences(known.members, {}, now)
        if self._instructors or self._learners:
            self._refresh_at = now + self._options.presence_refresh
            return self._sync(query=False)
        self._refresh_at = math.inf
        return None

    def flush(self) -> Delivery | None:
        """Number, encode (once) and remember every pending event; None when nobody here is to
        get any (then they are only kept for replay)."""
        self._flush_at = math.inf
        if not self._pending:
            return None
        everyone: list[str] = []
        learners: list[str] = []
        for frame, for_learners in self._pending.values():
            self._seq += 1
            text = encode(msgspec.structs.replace(frame, epoch=self._epoch, seq=self._seq))
            self._history.add(self._seq, text)
            everyone.append(text)
            if for_learners:
                self._learner_history.add(self._seq, text)
                learners.append(text)
        self._pending.clear()
        to_instructors = batch(everyone) if self._instructors else None
        to_learners = batch(learners) if learners and self._learners else None
        if to_instructors is None and to_learners is None:
            return None
        return Delivery(to_instructors, to_learners)

    # --- internals ------------------------------------------------------------------------------

    def _queue(self, frame: Out, now: float, *, learners: bool = False, key: object = None) -> None:
        self._pending[key if key is not None else object()] = (frame, learners)
        if self._flush_at == math.inf:
            self._flush_at = now + self._options.tick

    def _remote_node(self, node: str, now: float) -> _Node:
        known = self._remote.get(node)
        if known is None:
            known = self._remote[node] = _Node()
        known.heard_at = now
        return known

    def _replace_node(self, node: str, members: list[Member], now: float) -> None:
        known = self._remote_node(node, now)
        new = {m.conn: m for m in members}
        self._queue_differences(known.members, new, now)
        known.members = new

    def _queue_differences(
        self, old: dict[str, Member], new: dict[str, Member], now: float
    ) -> None:
        for conn, member in old.items():
            if conn not in new:
                self._queue(Presence(self.course_id, "leave", member), now)
        for conn, member in new.items():
            before = old.get(conn)
            if before is None:
                self._queue(Presence(self.course_id, "join", member), now)
            elif before != member:
                self._queue(Presence(self.course_id, "watch", member), now)

    def _sync(self, *, query: bool, learners: bool = False) -> PresenceSync:
        members = [*self._instructors.values(), *self._learners.values()]
        known = list(self._progress.values()) if learners else []
        return PresenceSync(self.course_id, self._node, members, query=query, learners=known)

    def _online(self) -> list[Member]:
        """Everyone in the room: this node's members, then the other nodes'."""
        online = [*self._instructors.values(), *self._learners.values()]
        for known in self._remote.values():
            online.extend(known.members.values())
        return online


def _texts(delivery: Delivery | None, instructors: bool) -> list[str]:
    """The text of `delivery` for one audience, as a list to put before others."""
    if delivery is None:
        return []
    text = delivery.instructors if instructors else delivery.learners
    return [] if text is None else [text]
