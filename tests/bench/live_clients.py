"""One client process of the live benchmark (tests/bench/live.py): many trio-websocket clients.

    python -m tests.bench.live_clients   (driven through stdin/stdout by tests.bench.live)

Reads one JSON job line (server URL, learners, instructors, heartbeat interval), connects them
all and prints `{"ready": n}`. Then obeys one command per line:

- `go <epoch> <slice> <turn>`: every learner sends a progress heartbeat every `interval` seconds
  (random phase), reporting what it played since its last one, but only in its server's turns:
  time is cut into slices of `slice` seconds from `epoch` (wall clock), the slices alternate
  between two servers, and this process's are those of parity `turn` (0 or 1); a heartbeat
  due in the other server's slice is skipped. The heartbeat's position is the wall clock
  modulo 3000 s, so an instructor receiving the learner's progress knows when it was sent
  (all processes share this machine's clock).
- `solo on|off`: from now on send in every slice, or in none.
- `mark`: print the counters now (messages and frames received, acks), for a window's edges.
- `report <t0> <t1>`: print ack latencies and instructor lags of heartbeats sent within
  [t0, t1], and when each learner got the announcement.
- `quit`: close everything and exit.
"""

from __future__ import annotations

import gc
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    connect_websocket_url,
)

WRAP = 3000.0  # seconds: positions are time.time() % WRAP
CONNECT_CONCURRENCY = 64


@dataclass
class Turns:
    """When this process's learners send: in alternate slices (see the module's docstring),
    or, once `solo` is set, always (True) or never (False)."""

    epoch: float = 0.0
    slice: float = 1.0
    turn: int = 0
    solo: bool | None = None

    def now_ours(self) -> bool:
        if self.solo is not None:
            return self.solo
        return int((time.time() - self.epoch) // self.slice) % 2 == self.turn


@dataclass
class Stats:
    messages: int = 0  # WebSocket messages received
    frames: int = 0  # frames received (a batch counts its frames)
    acks: int = 0
    acks_in: list[tuple[float, float]] = field(default_factory=list)  # (sent at, latency)
    lags: list[tuple[float, float]] = field(default_factory=list)  # (sent at, lag)
    announced: list[float] = field(default_factory=list)  # arrival times
    errors: int = 0
    error_codes: dict[str, int] = field(default_factory=dict)
    closed: int = 0
    settled: int = 0  # sockets welcomed, or failed to connect
    all_settled: trio.Event = field(default_factory=trio.Event)
    expected: int = 0

    def settle(self) -> None:
        self.settled += 1
        if self.settled == self.expected:
            self.all_settled.set()


def position_now() -> float:
    return round(time.time() % WRAP, 3)


def sent_at(position: float, now: float) -> float:
    """The send time a position stands for (the latest one not after `now`)."""
    base = now - (now % WRAP)
    sent = base + position
    return sent - WRAP if sent > now + 1 else sent


async def connect(
    nursery: trio.Nursery, url: str, stats: Stats, ready: trio.Semaphore
) -> WebSocketConnection | None:
    try:
        async with ready:
            return await connect_websocket_url(nursery, url)
    except (OSError, HandshakeError):
        stats.errors += 1
        stats.settle()
        return None


async def learner(
    url: str,
    job: list[Any],
    stats: Stats,
    ready: trio.Semaphore,
    go: trio.Event,
    turns: Turns,
    interval: float,
) -> None:
    user_id, token, course_id, content_id = job
    async with trio.open_nursery() as owner:
        ws = await connect(owner, f"{url}/api/v1/ws/progress/{course_id}", stats, ready)
        if ws is None:
            return
        await _learn(ws, user_id, token, content_id, stats, go, turns, interval)
        owner.cancel_scope.cancel()


async def _learn(
    ws: WebSocketConnection,
    user_id: int,
    token: str,
    content_id: int,
    stats: Stats,
    go: trio.Event,
    turns: Turns,
    interval: float,
) -> None:
    try:
        await ws.send_message(
            json.dumps({"type": "auth", "token": token, "device_id": f"b{user_id}"})
        )
        await ws.send_message('{"type":"subscribe"}')
        pending: dict[int, float] = {}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_learner_reads, ws, stats, pending)
            await go.wait()
            await trio.sleep(random.random() * interval)
            n = 0
            last: float | None = None
            while True:
                if turns.now_ours():
                    n += 1
                    pos = position_now()
                    pending[n] = time.time()
                    # Played since the last heartbeat, as a player reports it: contiguous,
                    # however late this timer fires or how many were skipped (a gap each
                    # time would split the stored row further with every heartbeat, which no
                    # player does).
                    start = max(0.0, pos - interval) if last is None or last > pos else last
                    played = [[start, pos]]
                    update = {"content_id": content_id, "position": pos, "played": played}
                    last = pos
                    frame = {"type": "progress", "id": n, "update": update}
                    await ws.send_message(json.dumps(frame))
                await trio.sleep(interval)
    except ConnectionClosed:
        stats.closed += 1


async def _receive(ws: WebSocketConnection, stats: Stats) -> tuple[float, list[dict[str, Any]]]:
    """The next message's frames (a batch's, or the one frame) and when it arrived; counted."""
    message = await ws.get_message()
    now = time.time()
    frame = json.loads(message)
    frames = frame["frames"] if frame["type"] == "batch" else [frame]
    stats.messages += 1
    stats.frames += len(frames)
    return now, frames


async def _learner_reads(ws: WebSocketConnection, stats: Stats, pending: dict[int, float]) -> None:
    try:
        await _read_acks(ws, stats, pending)
    except ConnectionClosed:
        stats.closed += 1


async def _read_acks(ws: WebSocketConnection, stats: Stats, pending: dict[int, float]) -> None:
    await ws.get_message()  # the welcome
    stats.settle()
    while True:
        now, frames = await _receive(ws, stats)
        for f in frames:
            kind = f["type"]
            if kind == "ack":
                stats.acks += 1
                sent = pending.pop(f["id"], None)
                if sent is not None:
                    stats.acks_in.append((sent, now - sent))
            elif kind in ("notification", "announcement"):
                stats.announced.append(now)
            elif kind == "ping":
                await ws.send_message('{"type":"pong"}')
            elif kind == "error":
                stats.errors += 1
                stats.error_codes[f["code"]] = stats.error_codes.get(f["code"], 0) + 1


async def instructor(url: str, job: list[Any], stats: Stats, ready: trio.Semaphore) -> None:
    _user_id, token, course_id = job
    async with trio.open_nursery() as owner:
        ws = await connect(owner, f"{url}/api/v1/ws/progress/{course_id}", stats, ready)
        if ws is None:
            return
        await _follow(ws, token, stats)
        owner.cancel_scope.cancel()


async def _follow(ws: WebSocketConnection, token: str, stats: Stats) -> None:
    try:
        await ws.send_message(json.dumps({"type": "auth", "token": token}))
        await ws.send_message('{"type":"subscribe"}')
        await ws.get_message()  # the welcome
        stats.settle()
        while True:
            now, frames = await _receive(ws, stats)
            for f in frames:
                if f["type"] == "progress":
                    sent = sent_at(f["position"], now)
                    stats.lags.append((sent, now - sent))
                elif f["type"] == "ping":
                    await ws.send_message('{"type":"pong"}')
    except ConnectionClosed:
        stats.closed += 1


async def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stdin = trio.wrap_file(sys.stdin)
    job = json.loads(await stdin.readline())
    stats = Stats(expected=len(job["learners"]) + len(job["instructors"]))
    go = trio.Event()
    turns = Turns()
    ready = trio.Semaphore(CONNECT_CONCURRENCY)
    async with trio.open_nursery() as nursery:
        for learner_job in job["learners"]:
            nursery.start_soon(
                learner, job["url"], learner_job, stats, ready, go, turns, job["interval"]
            )
        for instructor_job in job["instructors"]:
            nursery.start_soon(instructor, job["url"], instructor_job, stats, ready)
        with trio.fail_after(300):
            await stats.all_settled.wait()
        _say({"ready": stats.settled - stats.errors, "errors": stats.errors})
        async for line in stdin:
            command = line.split()
            if command[0] == "go":
                turns.epoch, turns.slice = float(command[1]), float(command[2])
                turns.turn = int(command[3])
                _hold_collector()
                go.set()
            elif command[0] == "solo":
                turns.solo = command[1] == "on"
            elif command[0] == "mark":
                _say(
                    {
                        "messages": stats.messages,
                        "frames": stats.frames,
                        "acks": stats.acks,
                        "t": time.time(),
                    }
                )
            elif command[0] == "report":
                gc.enable()
                t0, t1 = float(command[1]), float(command[2])
                _say(
                    {
                        "acks": [lat for s, lat in stats.acks_in if t0 <= s <= t1],
                        "lags": [lag for s, lag in stats.lags if t0 <= s <= t1],
                        "announced": stats.announced,
                        "errors": stats.errors,
                        "error_codes": stats.error_codes,
                        "closed": stats.closed,
                    }
                )
            elif command[0] == "quit":
                nursery.cancel_scope.cancel()
                return


def _hold_collector() -> None:
    """Keep this process's collector still while it measures.

    A client process holds over a thousand sockets; its own collections stopped it for up to
    300 ms at a time, and every ack or frame that arrived meanwhile was stamped late: the
    server's latency with the load generator's pauses added. Collected and frozen once
    connected, then no collections until the report: a minute's garbage is a few MB.
    """
    gc.collect()
    gc.freeze()
    gc.disable()


def _say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


if __name__ == "__main__":
    trio.run(main)
