"""The soak's clients (tests/bench/soak.py), each as cheap per operation as it can be: the load
generator shares two cores with everything it measures.

- `learner`: one WebSocket on its course's progress room, a heartbeat every `interval` s, each
  reporting the next `interval` seconds played; every ack is written in the `Ledger`.
- `player`: a manifest, then 64 KiB Range GETs of its signed rendition URL at a steady rate over
  one keep-alive connection (`KeepAliveGet`: a few lines of HTTP/1.1, not a client library).
- `poller`: one dashboard GET every `interval` s.
- `uploader`: one small upload at a time (multipart), until its video is ready.
- `resetter`: a password-reset request every `interval` s; `Mail` follows them to the SMTP server.

Everything is counted in a `Tally`: successes with their latency, and errors by reason.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed, HandshakeError, connect_websocket_url

from tests.smtp_server import SmtpServer

RANGE_BYTES = 64 * 1024
ACK_TIMEOUT = 30.0  # a heartbeat not acked by then counts as an error
READY_TIMEOUT = 180.0  # an upload not transcoded by then counts as an error
CONNECT_CONCURRENCY = 64


# --- what was seen ------------------------------------------------------------------------------


@dataclass
class Kind:
    """One kind of operation: counts and latencies of the current window, and of the run."""

    done: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    total_done: int = 0
    total_errors: int = 0


@dataclass
class Tally:
    kinds: dict[str, Kind] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)

    def ok(self, kind: str, latency: float | None = None) -> None:
        k = self.kinds.setdefault(kind, Kind())
        k.done += 1
        k.total_done += 1
        if latency is not None:
            k.latencies.append(latency)

    def fail(self, kind: str, reason: str) -> None:
        k = self.kinds.setdefault(kind, Kind())
        k.errors += 1
        k.total_errors += 1
        self.reasons[f"{kind}: {reason}"] += 1

    def window(self) -> dict[str, Kind]:
        """The current window's figures; a new window starts."""
        taken = {}
        for name, k in self.kinds.items():
            taken[name] = Kind(k.done, k.errors, k.latencies)
            k.done, k.errors, k.latencies = 0, 0, []
        return taken


@dataclass
class Ledger:
    """What the server acknowledged, per learner: the played intervals (merged as they come,
    heartbeats being contiguous) and the furthest position."""

    played: dict[int, list[list[float]]] = field(default_factory=dict)
    position: dict[int, float] = field(default_factory=dict)
    acks: int = 0

    def acked(self, user_id: int, start: float, end: float) -> None:
        self.acks += 1
        intervals = self.played.setdefault(user_id, [])
        if intervals and intervals[-1][1] == start:
            intervals[-1][1] = end
        else:
            intervals.append([start, end])
        self.position[user_id] = max(self.position.get(user_id, 0.0), end)


@dataclass
class Run:
    """What every client shares: the tally, and the run's phases."""

    tally: Tally
    go: trio.Event = field(default_factory=trio.Event)  # load starts
    stop: trio.Event = field(default_factory=trio.Event)  # no new work
    connect: trio.Semaphore = field(default_factory=lambda: trio.Semaphore(CONNECT_CONCURRENCY))
    connected: int = 0
    settled: int = 0  # sockets welcomed or failed
    all_settled: trio.Event = field(default_factory=trio.Event)
    expected: int = 0

    def settle(self) -> None:
        self.settled += 1
        if self.settled == self.expected:
            self.all_settled.set()

    async def next_tick(self, due: float, interval: float) -> float:
        """Sleep until the tick after `due` (or `stop`), and return it. A client that fell
        behind skips the ticks it missed: bursts to catch up would not be a steady rate."""
        due = max(due + interval, trio.current_time())
        with trio.move_on_at(due):
            await self.stop.wait()
        return due

    async def pace(self, interval: float) -> None:
        """Start after `go`, at a random phase of `interval`, so clients do not march together."""
        await self.go.wait()
        await trio.sleep(random.random() * interval)


# --- learners -----------------------------------------------------------------------------------


@dataclass
class Learning:
    """One learner's socket and what it waits for."""

    user_id: int
    ws: Any
    # heartbeat id -> (sent at, played from, played to)
    pending: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    welcomed: trio.Event = field(default_factory=trio.Event)
    drained: trio.Event = field(default_factory=trio.Event)  # stopped, and nothing pending


async def learner(
    run: Run, ledger: Ledger, ws_base: str, job: list[Any], interval: float, drain: float
) -> None:
    """A learner: heartbeats over its room's socket until `stop`, then waits up to `drain` s
    for the last acks. `job` is [user_id, token, course_id, content_id]. Nothing escapes: a
    failure is counted, and the learner is gone for the rest of the run."""
    user_id, token, course_id, content_id = job
    async with trio.open_nursery() as owner:
        try:
            async with run.connect:
                ws = await connect_websocket_url(owner, f"{ws_base}/api/v1/ws/progress/{course_id}")
        except (OSError, HandshakeError) as exc:
            run.tally.fail("ws connect", type(exc).__name__)
            run.settle()
            return
        me = Learning(user_id, ws)
        async with trio.open_nursery() as inner:
            inner.start_soon(_read, run, ledger, me, inner.cancel_scope)
            try:
                await ws.send_message(
                    json.dumps({"type": "auth", "token": token, "device_id": "s"})
                )
                await ws.send_message('{"type":"subscribe"}')
                with trio.fail_after(60):
                    await me.welcomed.wait()
                await _send_heartbeats(run, me, content_id, interval)
                if not me.pending:
                    me.drained.set()
                with trio.move_on_after(drain):
                    await me.drained.wait()
            except ConnectionClosed:
                pass  # counted by the reader
            except trio.TooSlowError:
                run.tally.fail("ws connect", "no welcome in 60 s")
            inner.cancel_scope.cancel()
        for _ in me.pending:
            run.tally.fail("heartbeat", "no ack by the end")
        if not me.welcomed.is_set():
            run.settle()
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await ws.aclose()
        owner.cancel_scope.cancel()


async def _send_heartbeats(run: Run, me: Learning, content_id: int, interval: float) -> None:
    await run.pace(interval)
    n = 0
    position = 0.0
    next_at = trio.current_time()
    while not run.stop.is_set():
        now = time.monotonic()
        for request_id, (sent, _, _) in list(me.pending.items()):
            if now - sent > ACK_TIMEOUT:
                del me.pending[request_id]
                run.tally.fail("heartbeat", f"no ack in {ACK_TIMEOUT:g} s")
        n += 1
        # What played since the last heartbeat: contiguous, as a player reports it.
        start, position = position, position + interval
        me.pending[n] = (now, start, position)
        update = {"content_id": content_id, "position": position, "played": [[start, position]]}
        await me.ws.send_message(json.dumps({"type": "progress", "id": n, "update": update}))
        next_at = await run.next_tick(next_at, interval)


async def _read(run: Run, ledger: Ledger, me: Learning, learner_scope: trio.CancelScope) -> None:
    """The socket's frames until it closes; a close the learner did not ask for is an error,
    and ends the learner."""
    try:
        while True:
            message = json.loads(await me.ws.get_message())
            frames = message["frames"] if message["type"] == "batch" else [message]
            for frame in frames:
                await _on_frame(run, ledger, me, frame)
    except ConnectionClosed as exc:
        code = exc.reason.code if exc.reason is not None else None
        run.tally.fail("ws closed", f"code {code}")
        learner_scope.cancel()


async def _on_frame(run: Run, ledger: Ledger, me: Learning, frame: dict[str, Any]) -> None:
    kind = frame["type"]
    if kind == "ack":
        sent = me.pending.pop(frame.get("id", -1), None)
        if sent is not None:
            run.tally.ok("heartbeat", time.monotonic() - sent[0])
            ledger.acked(me.user_id, sent[1], sent[2])
    elif kind == "error":
        me.pending.pop(frame.get("id", -1), None)
        run.tally.fail("heartbeat", frame["code"])
    elif kind == "ping":
        await me.ws.send_message('{"type":"pong"}')
    elif kind == "welcome":
        run.connected += 1
        me.welcomed.set()
        run.settle()
    if run.stop.is_set() and not me.pending:
        me.drained.set()


# --- players ------------------------------------------------------------------------------------


class KeepAliveGet:
    """GETs over one HTTP/1.1 keep-alive connection, reconnecting when the server closes it.
    A request on a reused connection that dies before any answer is sent again once, as
    browsers do (the server may close an idle connection just as the request leaves)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.stream: trio.SocketStream | None = None
        self.buffer = b""

    async def get(self, target: str, headers: str) -> tuple[int, dict[str, str], int]:
        """Status, headers (lower-case names) and the body's length (the body is dropped)."""
        reused = self.stream is not None
        try:
            return await self._get(target, headers)
        except (trio.BrokenResourceError, EOFError) as exc:
            await self.close()
            if not reused or isinstance(exc, _Answered):
                raise
            return await self._get(target, headers)

    async def _get(self, target: str, headers: str) -> tuple[int, dict[str, str], int]:
        if self.stream is None:
            self.stream = await trio.open_tcp_stream(self.host, self.port)
            self.buffer = b""
        request = f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n{headers}\r\n"
        await self.stream.send_all(request.encode())
        head = await self._until(b"\r\n\r\n", answered=False)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        fields = {}
        for line in lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        length = int(fields.get("content-length", "0"))
        while len(self.buffer) < length:
            await self._more(answered=True)
        self.buffer = self.buffer[length:]
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, fields, length

    async def _until(self, end: bytes, *, answered: bool) -> bytes:
        while end not in self.buffer:
            await self._more(answered=answered or bool(self.buffer))
        head, self.buffer = self.buffer.split(end, 1)
        return head

    async def _more(self, *, answered: bool) -> None:
        assert self.stream is not None
        chunk = await self.stream.receive_some(256 * 1024)
        if not chunk:
            raise _Answered() if answered else EOFError()
        self.buffer += chunk

    async def close(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            with trio.CancelScope(shield=True):
                await stream.aclose()


class _Answered(EOFError):
    """The connection closed in the middle of an answer: not a stale keep-alive."""


async def player(
    run: Run, api: httpx.AsyncClient, host: str, port: int, token: str, content_id: int,
    interval: float,
) -> None:  # fmt: skip
    """Manifest, then one Range GET every `interval` s through its rendition, from the start
    to the end and again; a new manifest before the signed URL expires."""
    auth = {"Authorization": f"Bearer {token}"}
    conn = KeepAliveGet(host, port)
    await run.pace(interval)
    url, expires_at, size, offset = "", 0.0, 0, 0
    next_at = trio.current_time()
    try:
        while not run.stop.is_set():
            if time.time() > expires_at - 60:
                url, expires_at = await _manifest(run, api, content_id, auth)
            if url:
                offset = await _range(run, conn, url, offset, size)
                size = max(size, offset)
            next_at = await run.next_tick(next_at, interval)
    finally:
        await conn.close()


async def _manifest(
    run: Run, api: httpx.AsyncClient, content_id: int, auth: dict[str, str]
) -> tuple[str, float]:
    t0 = time.monotonic()
    try:
        answer = await api.get(f"/api/v1/stream/video/{content_id}/manifest", headers=auth)
    except httpx.HTTPError as exc:
        run.tally.fail("manifest", type(exc).__name__)
        return "", 0.0
    if answer.status_code != 200:
        run.tally.fail("manifest", str(answer.status_code))
        return "", 0.0
    run.tally.ok("manifest", time.monotonic() - t0)
    manifest = answer.json()
    rendition = random.choice(manifest["renditions"])
    return rendition["url"], float(manifest.get("expires_at") or time.time() + 3600)


async def _range(run: Run, conn: KeepAliveGet, url: str, offset: int, size: int) -> int:
    """GET `RANGE_BYTES` from `offset` (from 0 past the end); the next offset."""
    if size and offset >= size:
        offset = 0
    last = offset + RANGE_BYTES - 1
    t0 = time.monotonic()
    try:
        status, fields, length = await conn.get(url, f"Range: bytes={offset}-{last}\r\n")
    except (OSError, trio.BrokenResourceError, EOFError, ValueError, IndexError) as exc:
        run.tally.fail("range GET", type(exc).__name__)
        return offset
    if status != 206:
        run.tally.fail("range GET", str(status))
        return offset
    whole = int(fields["content-range"].rsplit("/", 1)[1])
    if length != min(last, whole - 1) - offset + 1:
        run.tally.fail("range GET", "short body")
        return offset
    run.tally.ok("range GET", time.monotonic() - t0)
    next_offset = offset + length
    return 0 if next_offset >= whole else next_offset


# --- dashboards, uploads, mail ------------------------------------------------------------------


async def poller(run: Run, api: httpx.AsyncClient, path: str, token: str, interval: float) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    await run.pace(interval)
    next_at = trio.current_time()
    while not run.stop.is_set():
        t0 = time.monotonic()
        try:
            answer = await api.get(path, headers=auth)
        except httpx.HTTPError as exc:
            run.tally.fail("dashboard", type(exc).__name__)
        else:
            if answer.status_code == 200:
                run.tally.ok("dashboard", time.monotonic() - t0)
            else:
                run.tally.fail("dashboard", str(answer.status_code))
        next_at = await run.next_tick(next_at, interval)


async def uploader(
    run: Run, api: httpx.AsyncClient, auth: dict[str, str], course_id: int, clip: bytes
) -> None:
    """One upload at a time: a new video content, its file in one multipart request, then the
    manifest asked every half second until it is ready; upload -> ready is the latency."""
    await run.go.wait()
    n = 0
    while not run.stop.is_set():
        n += 1
        t0 = time.monotonic()
        try:
            content = await api.post(
                f"/api/v1/courses/{course_id}/contents",
                json={"title": f"Soak upload {n}", "kind": "video"},
                headers=auth,
            )
            content_id = content.json()["id"]
            sent = await api.post(
                f"/api/v1/courses/{course_id}/contents/{content_id}/video",
                files={"file": ("clip.mp4", clip, "video/mp4")},
                headers=auth,
            )
            if sent.status_code != 202:
                run.tally.fail("upload", f"upload {sent.status_code}")
                await trio.sleep(1)
                continue
            status = await _ready(api, content_id, auth)
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            run.tally.fail("upload", type(exc).__name__)
            await trio.sleep(1)
            continue
        if status == "ready":
            run.tally.ok("upload", time.monotonic() - t0)
        else:
            run.tally.fail("upload", status)


async def _ready(api: httpx.AsyncClient, content_id: int, auth: dict[str, str]) -> str:
    with trio.move_on_after(READY_TIMEOUT):
        while True:
            manifest = await api.get(f"/api/v1/stream/video/{content_id}/manifest", headers=auth)
            status = manifest.json().get("status") if manifest.status_code == 200 else None
            if status in ("ready", "failed"):
                return status
            await trio.sleep(0.5)
    return f"not ready in {READY_TIMEOUT:g} s"


@dataclass
class Mail:
    """Password-reset requests and their arrival at the SMTP server."""

    smtp: SmtpServer
    requested: dict[str, float] = field(default_factory=dict)  # address -> asked at
    delivered: set[str] = field(default_factory=set)
    seen: int = 0

    def collect(self, run: Run) -> None:
        """Count the messages that arrived since the last call (request -> arrival)."""
        messages = self.smtp.messages()
        now = time.monotonic()
        for message in messages[self.seen :]:
            to = str(message["To"])
            if to in self.requested and to not in self.delivered:
                self.delivered.add(to)
                run.tally.ok("mail", now - self.requested[to])
        self.seen = len(messages)

    def undelivered(self) -> list[str]:
        return [to for to in self.requested if to not in self.delivered]


async def resetter(
    run: Run, api: httpx.AsyncClient, mail: Mail, addresses: list[str], interval: float
) -> None:
    """A password reset for the next address every `interval` s (each address once)."""
    await run.pace(interval)
    next_at = trio.current_time()
    for address in addresses:
        if run.stop.is_set():
            return
        t0 = time.monotonic()
        # Asked before the answer comes: the mail can reach the SMTP server first.
        mail.requested[address] = t0
        try:
            answer = await api.post("/api/v1/auth/password-reset", json={"email": address})
        except httpx.HTTPError as exc:
            run.tally.fail("reset request", type(exc).__name__)
            del mail.requested[address]
        else:
            if answer.status_code == 202:
                run.tally.ok("reset request", time.monotonic() - t0)
            else:
                run.tally.fail("reset request", str(answer.status_code))
                del mail.requested[address]
        next_at = await run.next_tick(next_at, interval)
