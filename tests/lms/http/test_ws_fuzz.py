"""The live sockets fed any frames (hypothesis) on a real node: text or binary, before or after
the auth frame, on the notification socket or a course room. Every answer is a JSON frame (an
`error` names its code), every close a clean code, and a probe `ping` after the frames gets
its `pong` unless the socket was closed; another user's socket keeps being served throughout.

Hypothesis runs in a worker thread and sends each example's frames from the test's trio run
(`trio.from_thread.run`), where the node also runs."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import hypothesis
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, open_websocket_url

from lms.config import Settings
from lms.domain.edge_limits import parse_edge_limits
from tests.e2e.nodes import LOOPBACK_RATE_LIMITS
from tests.live_client import NOTIFICATIONS, live_socket, progress_path, ws_url
from tests.live_setup import Course, make_course
from tests.lms.http.conftest import Login
from tests.lms.http.test_progress_fuzz import JSON

NORMAL, UNSUPPORTED_DATA, POLICY_VIOLATION, TOO_BIG = 1000, 1003, 1008, 1009
CLEAN_CLOSES = {NORMAL, UNSUPPORTED_DATA, POLICY_VIOLATION, TOO_BIG}
PROBE = 424242.5
# Every frame type a client may send, and a few it may not.
TYPES = ["auth", "subscribe", "progress", "presence", "announcement", "ping", "pong", "batch"]

TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=200)
FRAME_LIKE = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | TEXT},
    optional={
        "id": JSON,
        "update": JSON,
        "text": JSON,
        "since": JSON,
        "content_id": JSON,
        "t": JSON,
        "token": JSON,
        "v": JSON,
    },
).map(json.dumps)
FRAMES = st.lists(
    FRAME_LIKE | JSON.map(json.dumps) | TEXT | st.binary(max_size=64), min_size=1, max_size=4
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Sockets per account raised: every example opens one for the same learner."""
    limits = parse_edge_limits(f"{LOOPBACK_RATE_LIMITS},socket_per_user=20000/60")
    return replace(settings, rate_limits=limits)


@pytest.fixture
async def course(
    api: httpx.AsyncClient, database_url: str, instructor: Login, learner: Login
) -> Course:
    return await make_course(api, database_url, instructor, learner)


def frames_of(message: str) -> list[dict[str, Any]]:
    decoded = json.loads(message)
    assert isinstance(decoded, dict), message
    return decoded["frames"] if decoded.get("type") == "batch" else [decoded]


async def exchange(url: str, token: str, authenticate: bool, frames: list[str | bytes]) -> None:
    """Send `frames` (after an auth frame, if `authenticate`) and a probe ping; read until its
    pong or a close, checking every frame the server sends and the close code."""
    closed: ConnectionClosed | None = None
    try:
        await _probe(url, token, authenticate, frames)
    except ConnectionClosed as exc:
        closed = exc
    if closed is not None:
        assert closed.reason.code in CLEAN_CLOSES, (closed.reason, frames)


async def _probe(url: str, token: str, authenticate: bool, frames: list[str | bytes]) -> None:
    async with open_websocket_url(url) as ws:
        if authenticate:
            await ws.send_message(json.dumps({"type": "auth", "token": token}))
        for frame in frames:
            await ws.send_message(frame)
        await ws.send_message(json.dumps({"type": "ping", "t": PROBE}))
        with trio.fail_after(10):
            while True:
                for frame in frames_of(await ws.get_message()):
                    assert isinstance(frame.get("type"), str), frame
                    if frame["type"] == "error":
                        assert frame["code"], frame
                        assert frame["message"], frame
                    if frame == {"type": "pong", "t": PROBE}:
                        return


async def test_any_frames_get_error_frames_or_a_clean_close_and_others_are_still_served(
    node: str, learner: Login, instructor: Login, course: Course
) -> None:
    urls = [ws_url(node, NOTIFICATIONS), ws_url(node, progress_path(course.id))]

    @hypothesis.settings(max_examples=100, deadline=None, database=None)
    @given(st.sampled_from(urls), st.booleans(), FRAMES)
    def check(url: str, authenticate: bool, frames: list[str | bytes]) -> None:
        trio.from_thread.run(exchange, url, learner.access_token, authenticate, frames)

    async with live_socket(node, progress_path(course.id), instructor.access_token) as other:
        await trio.to_thread.run_sync(check)
        await other.send({"type": "ping", "t": 1.5})
        await other.expect("pong", t=1.5)
    async with httpx.AsyncClient(base_url=node) as api:
        assert (await api.get("/health")).status_code == 200
