"""The live WebSocket edges: `/api/v1/ws/notifications` and `/api/v1/ws/progress/{course_id}`.

An edge authenticates the first frame, checks the caller's right to the course's room, and then
only moves frames: what the client sends becomes a call on the progress service or a message to
the router; what the actors queue on the connection is written by one writer task, everything
queued at once in one message. The answer to a client's own frame (an ack) is sent by the
reader itself when nothing is queued before it. The protocol is described in `proto/frames.py`.

Opening sockets is limited (lms/http/rate_limits.py): per client address before the handshake
(a plain 429 with Retry-After), per account once the auth frame names it (closed with 4429);
and a user holds at most LMS_MAX_SOCKETS_PER_USER open at once on a node, which their session
counts (actors/user_session.py): the next is closed with 4429 before its welcome.
"""

from __future__ import annotations

import msgspec
import structlog
import trio
from quart import Blueprint, websocket
from quart.wrappers import Websocket

from actors.connection import DEFAULT_KEEPALIVE, SLOW_CLIENT, Connection
from actors.runtime import ActorError
from lms.domain.access import Principal
from lms.errors import LmsError, RateLimited
from lms.http.announcements import count_announcement
from lms.http.wire import Services, services
from lms.store.database import StoreUnavailable
from proto.frames import (
    PROTOCOL_VERSION,
    Ack,
    Announce,
    Auth,
    Error,
    Heartbeat,
    Ping,
    Pong,
    ServerFrame,
    ServerPong,
    Subscribe,
    Watch,
    Welcome,
    batch,
    decode_client,
    encode,
)

log = structlog.get_logger()

blueprint = Blueprint("live", __name__)

AUTH_DEADLINE = 10.0
# Frames that could not be understood before the client is judged broken and closed.
BAD_FRAME_LIMIT = 20
# Leaving a room and session is a `tell`; bounded, since it runs shielded on the way out.
LEAVE_DEADLINE = 5.0
# The close frame waits behind what is already being written to a slow client.
CLOSE_DEADLINE = 5.0

UNSUPPORTED_DATA = 1003
POLICY_VIOLATION = 1008
TRY_LATER = 1013
# An application's close code (4000-4999), after HTTP's 429: too many sockets open at once for
# the account, or opened lately (the reason says which).
TOO_MANY = 4429


@blueprint.websocket("/api/v1/ws/notifications")
async def notifications() -> None:
    """The user's own channel: progress from their other devices, announcements of their
    courses, their uploads' jobs."""
    await _serve(None)


@blueprint.websocket("/api/v1/ws/progress/<int:course_id>")
async def course_progress(course_id: int) -> None:
    """A course's live room: progress heartbeats in, presence, learners' progress (for its
    instructors), announcements and jobs out."""
    await _serve(course_id)


async def _serve(course_id: int | None) -> None:
    ws: Websocket = websocket._get_current_object()  # type: ignore[attr-defined]
    svc = services()
    # Before the handshake, so an address over its limit gets a plain 429 with Retry-After.
    await svc.limits.per_client(svc.limits.socket_per_ip, "WebSocket connections from here")
    await ws.accept()
    admitted = await _admit(ws, svc, course_id)
    if admitted is None:
        return
    who, conn = admitted
    peer = conn.peer
    role = None if course_id is None else peer.role
    welcome = Welcome(PROTOCOL_VERSION, peer.user_id, peer.conn, conn.keepalive, course_id, role)
    try:
        if not await svc.live.router.attach(conn):
            conn.close(TOO_MANY)
            message = "too many connections open for this account here; close one first"
            await _refuse(ws, "too_many_sockets", message, TOO_MANY)
            return
        conn.offer(encode(welcome))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read, ws, svc, who, conn)
            await _write(ws, conn)
            nursery.cancel_scope.cancel()
    finally:
        # Shielded: this also runs on the way out of a cancelled handler (the client left).
        with trio.CancelScope(shield=True), trio.move_on_after(LEAVE_DEADLINE):
            await svc.live.router.leave(conn)
        log.info("ws_closed", conn=peer.conn, user_id=peer.user_id, code=conn.close_code)
    with trio.move_on_after(CLOSE_DEADLINE):
        await ws.close(conn.close_code or 1000)


async def _admit(
    ws: Websocket, svc: Services, course_id: int | None
) -> tuple[Principal, Connection] | None:
    """Read and check the `auth` frame; on failure, say why and close with 1008 (1003 for a
    binary frame, 1013 when access cannot be checked now, 4429 when the account opened too
    many sockets lately)."""
    try:
        with trio.fail_after(AUTH_DEADLINE):
            auth = _auth_frame(await ws.receive())
        who = await svc.accounts.authenticate(auth.token)
        limits = svc.limits
        await limits.per_user(limits.socket_per_user, who.user_id, "WebSockets for this account")
        peer = await svc.live.peer(who, course_id, auth.device_id)
    except trio.TooSlowError:
        await _refuse(ws, "auth_timeout", f"send the auth frame within {AUTH_DEADLINE:g}s")
    except _Refused as refused:
        await _refuse(ws, refused.code, refused.message, refused.close)
    except RateLimited as error:
        await _refuse(ws, error.code, error.message, TOO_MANY)
    except LmsError as error:
        await _refuse(ws, error.code, error.message)
    except StoreUnavailable as exc:
        log.warning("ws_admission_unavailable", error=str(exc))
        await _refuse(ws, "unavailable", "the server cannot check access now; retry", TRY_LATER)
    else:
        return who, Connection(peer, keepalive=auth.keepalive or DEFAULT_KEEPALIVE)
    return None


def _auth_frame(data: str | bytes) -> Auth:
    if isinstance(data, bytes):
        # As on an admitted socket: frames are JSON text, and a binary one is not a frame.
        raise _Refused("binary_frame", "frames are JSON text", UNSUPPORTED_DATA)
    try:
        frame = decode_client(data)
    except msgspec.DecodeError as exc:
        # A ValidationError names the field, never its value: no token gets into the message.
        raise _Refused("auth_required", f"the first frame must be an auth frame: {exc}") from None
    if not isinstance(frame, Auth):
        raise _Refused("auth_required", 'the first frame must be {"type": "auth", ...}')
    if frame.v != PROTOCOL_VERSION:
        raise _Refused("unsupported_version", f"this server speaks version {PROTOCOL_VERSION}")
    return frame


class _Refused(Exception):
    def __init__(self, code: str, message: str, close: int = POLICY_VIOLATION) -> None:
        self.code = code
        self.message = message
        self.close = close


async def _refuse(ws: Websocket, code: str, message: str, close: int = POLICY_VIOLATION) -> None:
    await ws.send(encode(Error(code, message)))
    await ws.close(close, code)


async def _write(ws: Websocket, conn: Connection) -> None:
    """Send what is queued, everything queued in one message. Returns once the connection is
    closed (by the client leaving, a room or session cutting it, or the router's keep-alive)."""
    while True:
        try:
            frames = await conn.next_frames()
        except trio.EndOfChannel:
            return
        if conn.close_code == SLOW_CLIENT:
            return  # its room and session have let it go; what it did not read is dropped
        await ws.send(batch(frames))


async def _read(ws: Websocket, svc: Services, who: Principal, conn: Connection) -> None:
    """Turn each client frame into a call or a message; answer the ones that ask for it."""
    bad = 0
    while conn.open:
        data = await ws.receive()
        conn.heard()
        if isinstance(data, bytes):
            conn.offer(encode(Error("binary_frame", "frames are JSON text")))
            conn.close(UNSUPPORTED_DATA)
            return
        if await _respond(ws, svc, who, conn, data):
            bad += 1
            if bad >= BAD_FRAME_LIMIT:
                conn.offer(encode(Error("too_many_errors", "closing after too many bad frames")))
                conn.close(POLICY_VIOLATION)


async def _respond(
    ws: Websocket, svc: Services, who: Principal, conn: Connection, data: str
) -> bool:
    """Do what one text frame asks and answer it if it asks for an answer; True when the
    answer is an error.

    A function of its own so that the decoded frame and its answer (a dozen objects the
    collector tracks, with the progress state in them) die here: left in the reader's locals
    they lived until the client's next frame, seconds later, and every collection meanwhile
    walked them."""
    try:
        frame = decode_client(data)
    except msgspec.ValidationError as exc:
        answer: ServerFrame | None = Error("invalid_frame", str(exc))
    except msgspec.DecodeError as exc:
        answer = Error("bad_json", f"not a JSON frame: {exc}")
    else:
        answer = await _handle(svc, who, conn, frame)
    if answer is None:
        return False
    await _answer(ws, conn, encode(answer))
    return isinstance(answer, Error)


async def _answer(ws: Websocket, conn: Connection, text: str) -> None:
    """Send the answer to the client's frame: at once when the writer is idle (most acks),
    which spares waking it; else behind what is queued."""
    if not conn.claim():
        conn.offer(text)
        return
    try:
        await ws.send(text)
    finally:
        conn.release()


async def _handle(
    svc: Services, who: Principal, conn: Connection, frame: object
) -> ServerFrame | None:
    """Do what one frame asks; the frame to answer with (an `Error` when it cannot be done)."""
    course_id = conn.peer.course_id
    match frame:
        case Heartbeat(update, request_id):
            try:
                state = await svc.progress.record(who, update, device_id=conn.peer.device_id)
            except LmsError as error:
                return Error(error.code, error.message, request_id)
            except (ActorError, StoreUnavailable):
                return Error(
                    "unavailable", "progress cannot be stored right now; retry", request_id
                )
            return Ack(request_id, state)
        case Ping(t):
            return ServerPong(t)
        case Pong():
            pass
        case Subscribe(since) if course_id is not None:
            await svc.live.router.join(conn, since)
        case Watch(content_id) if course_id is not None:
            await svc.live.router.watch(conn, content_id)
        case Announce(text, request_id) if course_id is not None:
            try:
                await count_announcement(who)
                # The socket was admitted with the role of that moment: someone demoted
                # since (an admin who is not the course's owner) may no longer announce.
                await svc.live.announce(await svc.accounts.current(who), course_id, text)
            except LmsError as error:
                return Error(error.code, error.message, request_id)
            return Ack(request_id)
        case Auth():
            return Error("already_authenticated", "this connection is authenticated already")
        case _:
            kind = type(frame).__name__.lower()
            return Error("not_here", f"{kind} frames belong on a course's progress socket")
    return None
