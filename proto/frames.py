"""WebSocket frames of `/api/v1/ws/notifications` and `/api/v1/ws/progress/{course_id}`.

Every frame is one JSON object in one text message, tagged by `type`. The protocol, in order:

1. The client sends `auth` first (within a few seconds), with its access token, an optional
   `device_id` (so its own progress is not echoed back to it) and an optional keep-alive.
2. The server answers `welcome` (protocol version, who you are, your role in the room), or an
   `error` and a close with 1008.
3. On a progress socket the client sends `subscribe`, with the `(epoch, seq)` of the last room
   event it saw when it reconnects. The server answers with the events missed, or with `resync`
   followed by a fresh `snapshot` when its history no longer reaches back (or the epoch is not
   this room's: another node, or a restarted room). `resync` (reason "link") and a snapshot
   may also come unasked, at any time: the node's link to the other nodes was down and their
   events in the meantime may be lost; the room goes on in a new epoch.
4. Then either side sends at any time. Client: `progress` heartbeats (answered by `ack` once
   stored), `presence` (what I am watching), `announcement` (instructors), `ping`/`pong`.
   Server: `presence`, `progress`, `announcement`, `job` (room events, each with its epoch and
   seq), `notification`, `progress` pushed from the user's other devices, `ping`/`pong`,
   `error`. Several queued frames may arrive together in one `batch`.

The server pings a client that has been silent for its keep-alive interval and closes it with
1011 when the client stays silent for another interval; a client answers `ping` with `pong`
(any frame counts). Close codes: 1003 binary frame, 1008 policy (authentication, access,
too many bad frames), 1009 frame too large, 1011 keep-alive timeout, 1013 the client reads too
slowly (its send queue filled up).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.events import JobChanged, ProgressChanged
from proto.progress import ProgressState, ProgressUpdate

PROTOCOL_VERSION = 1

MAX_FRAME_BYTES = 64 * 1024
"""Largest frame a client may send; the server closes with 1009 above it."""

Role = Literal["learner", "instructor"]
"""A member's role in one course room: instructors (the owner, admins) see everything."""

Token = Annotated[str, Meta(min_length=1, max_length=8192)]
DeviceId = Annotated[str, Meta(min_length=1, max_length=64)]
RequestId = Annotated[int, Meta(ge=0, le=2**53)]
AnnouncementText = Annotated[str, Meta(min_length=1, max_length=4000)]
KeepAlive = Annotated[float, Meta(ge=1.0, le=300.0)]


class Frame(msgspec.Struct, frozen=True, gc=False, tag_field="type", forbid_unknown_fields=True):
    """Base of every frame."""


class Position(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """Where a client is in a room's event stream: the last `(epoch, seq)` it saw."""

    epoch: Annotated[str, Meta(max_length=64)]
    seq: Annotated[int, Meta(ge=0)]


# --- client -> server ---------------------------------------------------------------------------


class Auth(Frame, frozen=True, tag="auth"):
    """The first frame. `keepalive` is how often the client will be pinged when silent
    (seconds, like MQTT's keep-alive); the server's default when absent."""

    token: Token
    device_id: DeviceId | None = None
    keepalive: KeepAlive | None = None
    v: int = PROTOCOL_VERSION


class Subscribe(Frame, frozen=True, tag="subscribe"):
    """Join the course room's event stream, from `since` when resuming."""

    since: Position | None = None


class Heartbeat(Frame, frozen=True, tag="progress"):
    """A player's progress heartbeat; answered by an `ack` with the same `id` once stored."""

    update: ProgressUpdate
    id: RequestId | None = None


class Watch(Frame, frozen=True, tag="presence"):
    """What the client is looking at now (None: the course page, no content)."""

    content_id: int | None = None


class Announce(Frame, frozen=True, tag="announcement"):
    """An instructor's announcement to everyone in the course; acked with its `id`."""

    text: AnnouncementText
    id: RequestId | None = None


class Ping(Frame, frozen=True, tag="ping"):
    t: float | None = None


class Pong(Frame, frozen=True, tag="pong"):
    t: float | None = None


ClientFrame = Auth | Subscribe | Heartbeat | Watch | Announce | Ping | Pong

_client = msgspec.json.Decoder(ClientFrame)


def decode_client(data: str | bytes) -> ClientFrame:
    """Parse one client frame. Raises `msgspec.DecodeError` for malformed JSON and
    `msgspec.ValidationError` (a subclass) for an unknown type or a wrong shape."""
    return _client.decode(data)


# --- server -> client ---------------------------------------------------------------------------


class Out(msgspec.Struct, frozen=True, gc=False, tag_field="type", omit_defaults=True):
    """Base of every frame the server sends (defaults are left out to keep frames small)."""


class Member(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """One connection present in a course room, on whichever node it is."""

    conn: str  # node-unique connection id, "<node>/<n>"
    user_id: int
    name: str
    role: Role
    content_id: int | None = None


class LearnerProgress(msgspec.Struct, frozen=True, gc=False, omit_defaults=True):
    """A learner's latest progress on one content, as the room last heard it."""

    user_id: int
    content_id: int
    position: float
    watched_seconds: float
    coverage: float
    completed: bool
    duration: float | None = None


class Welcome(Out, frozen=True, tag="welcome"):
    v: int  # PROTOCOL_VERSION
    user_id: int
    conn: str
    keepalive: float
    course_id: int | None = None
    role: Role | None = None


class Snapshot(Out, frozen=True, tag="snapshot"):
    """The room as it is now, at `(epoch, seq)`; learners get it without the others' state."""

    course_id: int
    epoch: str
    seq: int
    online: list[Member]
    learners: list[LearnerProgress]


class Resync(Out, frozen=True, tag="resync"):
    """The missed events cannot be replayed; a `snapshot` follows. `reason`: "epoch" (a
    position of another room), "history" (no longer kept), "link" (sent unasked: events of
    other nodes may have been lost while the link to them was down)."""

    course_id: int
    epoch: str
    seq: int
    reason: str


class Presence(Out, frozen=True, tag="presence"):
    course_id: int
    event: Literal["join", "watch", "leave"]
    member: Member
    epoch: str = ""
    seq: int = 0


class Progress(Out, frozen=True, tag="progress"):
    """A learner's progress changed: to the course's instructors (with epoch and seq), and to
    the learner's other devices (without)."""

    user_id: int
    course_id: int
    content_id: int
    position: float
    watched_seconds: float
    coverage: float
    completed: bool
    duration: float | None = None
    device_id: str | None = None
    epoch: str = ""
    seq: int = 0

    @classmethod
    def latest(cls, course_id: int, learner: LearnerProgress) -> Progress:
        return cls(
            user_id=learner.user_id,
            course_id=course_id,
            content_id=learner.content_id,
            position=learner.position,
            watched_seconds=learner.watched_seconds,
            coverage=learner.coverage,
            completed=learner.completed,
            duration=learner.duration,
        )

    @classmethod
    def of(cls, event: ProgressChanged, epoch: str = "", seq: int = 0) -> Progress:
        return cls(
            user_id=event.user_id,
            course_id=event.course_id,
            content_id=event.content_id,
            position=event.position,
            watched_seconds=event.watched_seconds,
            coverage=event.coverage,
            completed=event.completed,
            duration=event.duration,
            device_id=event.device_id,
            epoch=epoch,
            seq=seq,
        )


class Announcement(Out, frozen=True, tag="announcement"):
    course_id: int
    id: str
    author_id: int
    author_name: str
    text: str
    at: float  # Unix time
    epoch: str = ""
    seq: int = 0


class Notification(Out, frozen=True, tag="notification"):
    """Something for the user outside the room they are in: an announcement of another course."""

    kind: Literal["announcement"]
    course_id: int
    announcement: Announcement


class Job(Out, frozen=True, tag="job"):
    """A transcode job moved: to the course's instructors (with epoch and seq) and the uploader."""

    job: JobChanged
    epoch: str = ""
    seq: int = 0


class Ack(Out, frozen=True, tag="ack"):
    id: int | None = None
    state: ProgressState | None = None


class Error(Out, frozen=True, tag="error"):
    code: str
    message: str
    id: int | None = None


class ServerPing(Out, frozen=True, tag="ping"):
    t: float | None = None


class ServerPong(Out, frozen=True, tag="pong"):
    t: float | None = None


class Batch(Out, frozen=True, tag="batch"):
    """Several frames sent together, in order; built by `batch()` from frames already
    encoded. A batch never holds another batch."""

    frames: list[ServerFrame]


ServerFrame = (
    Welcome
    | Snapshot
    | Resync
    | Presence
    | Progress
    | Announcement
    | Notification
    | Job
    | Ack
    | Error
    | ServerPing
    | ServerPong
    | Batch
)

_encoder = msgspec.json.Encoder()
_server = msgspec.json.Decoder(ServerFrame)


def encode(frame: Out) -> str:
    """One server frame as the text of one WebSocket message. Fan-out encodes once and shares
    the string among every connection it goes to."""
    return _encoder.encode(frame).decode()


_BATCH_HEAD = '{"type":"batch","frames":['


def batch(texts: list[str]) -> str:
    """Frames already encoded, sent as one message: a `batch` when there are several. Batches
    never nest: a batch among `texts` (a room's tick) gives its frames to the new one."""
    if len(texts) == 1:
        return texts[0]
    inner = [t[len(_BATCH_HEAD) : -2] if t.startswith(_BATCH_HEAD) else t for t in texts]
    return _BATCH_HEAD + ",".join(inner) + "]}"


def decode_server(data: str | bytes) -> ServerFrame:
    """Parse one server frame (for clients: tests, benchmarks)."""
    return _server.decode(data)
