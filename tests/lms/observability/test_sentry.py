"""Errors reach Sentry when LMS_SENTRY_DSN is set: a real HTTP server on loopback plays Sentry
and receives the envelopes sentry-sdk posts to it."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import sentry_sdk
import trio

from actors.runtime import Supervisor
from lms.accounts.service import Accounts
from lms.config import Settings
from lms.node import serve
from lms.observability.sentry import sentry_reporting
from tests.lms.http.conftest import Login, node_settings, sign_up
from tests.polling import eventually

PROJECT = 7


@dataclass
class FakeSentry:
    """What a Sentry server received: the raw bodies posted to the project's envelope URL."""

    port: int
    bodies: list[bytes] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return f"http://public-key@127.0.0.1:{self.port}/{PROJECT}"

    def events(self) -> list[dict]:
        """The `event` items of every envelope received (transactions, sessions left out)."""
        found = []
        for body in self.bodies:
            lines = iter(body.split(b"\n"))
            next(lines)  # the envelope's header
            for header in lines:
                if not header.strip():
                    continue
                item = json.loads(header)
                payload = next(lines)
                if item.get("type") == "event":
                    found.append(json.loads(payload))
        return found


@pytest.fixture
def fake_sentry() -> Iterator[FakeSentry]:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path == f"/api/{PROJECT}/envelope/":
                received.append(body)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeSentry(server.server_address[1], received)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(
    database_url: str, redis_url: str, tmp_path: Path, fake_sentry: FakeSentry
) -> Settings:
    """A node's settings, reporting to `fake_sentry`."""
    return node_settings(
        database_url,
        redis_url,
        tmp_path,
        LMS_TRANSCODE_WORKERS="0",
        LMS_SENTRY_DSN=fake_sentry.dsn,
        LMS_SENTRY_ENVIRONMENT="test",
    )


@pytest.fixture
async def api(nursery: trio.Nursery, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a node serving `settings` in this test's trio run."""
    url = await nursery.start(serve, settings)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture
async def learner(api: httpx.AsyncClient) -> Login:
    return await sign_up(api, "learner@test.lms")


async def flush() -> None:
    """Wait until every event sentry-sdk queued has been posted (and answered)."""
    await trio.to_thread.run_sync(sentry_sdk.flush)


async def test_an_unhandled_request_error_is_reported_with_its_request_and_user_ids(
    api: httpx.AsyncClient,
    learner: Login,
    fake_sentry: FakeSentry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: Accounts, who: object) -> None:
        raise RuntimeError("a bug in reading the profile")

    monkeypatch.setattr(Accounts, "me", broken)

    response = await api.get(
        "/api/v1/users/me",
        headers={**learner.auth, "X-Request-ID": "req-sentry-1", "X-Forwarded-For": "192.0.2.7"},
    )
    await flush()

    assert response.status_code == 500
    assert response.json()["error"]["message"] == "internal server error req-sentry-1"
    [event] = fake_sentry.events()
    [exception] = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == (
        "RuntimeError",
        "a bug in reading the profile",
    )
    assert event["tags"]["request_id"] == "req-sentry-1"
    assert event["tags"]["user_id"] == str(learner.user_id)
    assert event["user"] == {"id": str(learner.user_id)}
    assert event["environment"] == "test"
    # The request as its URL rule and headers, without the credentials or the client's address.
    assert event["request"]["method"] == "GET"
    assert event["request"]["url"] == "/api/v1/users/me"
    headers = {name.lower(): value for name, value in event["request"]["headers"].items()}
    assert headers["x-request-id"] == "req-sentry-1"
    assert "authorization" not in headers
    assert "x-forwarded-for" not in headers
    # Ids only: neither the token nor the learner's address went out.
    raw = b"".join(fake_sentry.bodies)
    assert learner.access_token.encode() not in raw
    assert learner.email.encode() not in raw
    assert b"192.0.2.7" not in raw


async def test_a_client_error_is_not_reported(
    api: httpx.AsyncClient, fake_sentry: FakeSentry
) -> None:
    assert (await api.get("/api/v1/users/me")).status_code == 401
    assert (await api.get("/api/v1/no-such-thing")).status_code == 404
    await flush()
    assert fake_sentry.events() == []


class CrashesOnce:
    """An actor whose first incarnation crashes once it started; the next one runs on."""

    def __init__(self, incarnations: list[int]) -> None:
        incarnations.append(len(incarnations) + 1)
        self._first = len(incarnations) == 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self._first:
            raise ValueError("the actor's state went wrong")
        await trio.sleep_forever()


async def crash_an_actor_once() -> None:
    """Run an actor under a supervisor until it has crashed and been restarted once."""
    incarnations: list[int] = []
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor("node")
        await nursery.start(supervisor.run)
        await supervisor.start_child("ledger", lambda: CrashesOnce(incarnations))

        async def restarts() -> int:
            return supervisor.restarts

        await eventually(restarts, lambda n: n == 1)
        nursery.cancel_scope.cancel()


async def test_an_actor_crash_is_reported_once_tagged_with_the_actor(
    settings: Settings, fake_sentry: FakeSentry
) -> None:
    with sentry_reporting(settings):
        await crash_an_actor_once()
        await flush()

    [event] = fake_sentry.events()
    assert event["tags"]["actor"] == "ledger"
    assert event["exception"]["values"][-1]["value"] == "the actor's state went wrong"
    assert event["server_name"] == settings.node_id


async def test_nothing_is_reported_once_reporting_has_stopped(
    settings: Settings, fake_sentry: FakeSentry
) -> None:
    with sentry_reporting(settings):
        pass
    await crash_an_actor_once()
    await flush()
    assert fake_sentry.bodies == []


def test_without_a_dsn_sentry_sdk_is_never_imported() -> None:
    script = """
import sys
from lms.config import Settings
from lms.observability.sentry import sentry_reporting
import lms.cli, lms.node, lms.http.app, lms.http.errors
settings = Settings.from_env({})
assert settings.sentry_dsn is None
with sentry_reporting(settings):
    pass
print("sentry_sdk" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False", done.stderr
