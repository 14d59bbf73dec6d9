"""The live layer's messages that are not WebSocket frames: what its Bus carries between nodes,
and the REST body of an announcement.

Channels: `course:<id>` (a course room's events, heard by every node with that room open),
`user:<id>` (one user's session, heard by every node where that user is connected) and
`live:all` (heard by every node). Presence is replicated per node: each node publishes its
own members' joins, moves and leaves, answers a `PresenceSync` query with its full list, and
repeats that list now and then so that a node that vanished ages out of everyone's rooms.
"""

from __future__ import annotations

import msgspec

from proto.api import Request
from proto.cache import TagsInvalidated
from proto.events import JobChanged, ProgressChanged
from proto.frames import AnnouncementText, LearnerProgress, Member

BROADCAST = "live:all"


def course_channel(course_id: int) -> str:
    return f"course:{course_id}"


def user_channel(user_id: int) -> str:
    return f"user:{user_id}"


class Joined(msgspec.Struct, frozen=True, gc=False, tag="joined"):
    course_id: int
    node: str
    member: Member


class Moved(msgspec.Struct, frozen=True, gc=False, tag="moved"):
    """A member started watching another content (or none)."""

    course_id: int
    node: str
    member: Member


class Left(msgspec.Struct, frozen=True, gc=False, tag="left"):
    course_id: int
    node: str
    member: Member


class PresenceSync(msgspec.Struct, frozen=True, gc=False, tag="presence_sync"):
    """Every member `node` has in the room now (replacing what others held for it); with
    `query`, every other node answers with its own list. An answer also carries the latest
    progress the node knows of each learner, so that a node that missed messages while its
    link was down learns the learners it has not heard of at all."""

    course_id: int
    node: str
    members: list[Member]
    query: bool = False
    learners: list[LearnerProgress] = []


class Announced(msgspec.Struct, frozen=True, gc=False, tag="announced"):
    """An announcement to a course: its room members hear it in the room, and the rest of
    `audience` (enrolled learners and the owner) through their sessions, on every node."""

    course_id: int
    id: str
    author_id: int
    author_name: str
    text: str
    at: float
    audience: list[int]


LiveMessage = (
    ProgressChanged
    | JobChanged
    | Joined
    | Moved
    | Left
    | PresenceSync
    | Announced
    | TagsInvalidated
)


class Envelope(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A message on the wire between nodes, with the node it came from (which ignores it; one
    name per run of the node) and its number among that run's messages on its channel, from 1:
    a receiver that sees a number skipped knows it lost a message (0: not numbered)."""

    origin: str
    message: LiveMessage
    seq: int = 0


class AnnouncementCreate(Request, frozen=True):
    """`POST /api/v1/courses/{id}/announcements`."""

    text: AnnouncementText
