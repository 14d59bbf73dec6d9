"""Rate limits: the memory bucket store (a bucket per key, bounded however many keys come),
Redis buckets failing open to it, and every limited door of a real node answering 429 with
Retry-After past its limit, per client and per account or address independently."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import structlog
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
)

from lms import commands
from lms.config import Settings
from lms.domain.client_address import parse_networks
from lms.domain.edge_limits import DEFAULT_EDGE_LIMITS, parse_edge_limits
from lms.domain.token_bucket import Limit
from lms.errors import RateLimited
from lms.http.rate_limits import FailOpenBuckets, MemoryBuckets, RedisOutage, limit
from lms.node import serve
from lms.store import bridge
from lms.store.rate_buckets import RedisBuckets, close_client, redis_client
from tests.live_client import NOTIFICATIONS, live_socket, ws_url
from tests.lms.http.conftest import PASSWORD, Login, log_in, sign_up
from tests.polling import eventually
from tests.redis_restart import restart_redis
from tests.services import start_redis


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_each_key_has_its_own_bucket() -> None:
    buckets = MemoryBuckets(Limit(capacity=2, rate=1.0), clock=Clock())
    assert [await buckets.take("a") for _ in range(2)] == [0.0, 0.0]
    assert await buckets.take("a") == pytest.approx(1.0)
    assert await buckets.take("b") == 0.0


async def test_no_stream_of_new_keys_grows_the_map_past_its_bound() -> None:
    buckets = MemoryBuckets(Limit(capacity=1, rate=0.001), max_keys=100, clock=Clock())
    for n in range(10_000):
        await buckets.take(f"client-{n}")
    assert len(buckets) == 100


async def test_the_least_recently_used_key_is_the_one_forgotten() -> None:
    buckets = MemoryBuckets(Limit(capacity=1, rate=0.001), max_keys=2, clock=Clock())
    await buckets.take("old")
    await buckets.take("busy")
    await buckets.take("busy")  # refused, and now the most recently used
    await buckets.take("new")
    assert await buckets.take("busy") > 0  # still limited: kept
    assert await buckets.take("old") == 0.0  # forgotten, so full again


async def test_buckets_that_refilled_are_dropped() -> None:
    clock = Clock()
    buckets = MemoryBuckets(Limit(capacity=1, rate=1.0), clock=clock)
    for n in range(50):
        await buckets.take(f"client-{n}")
    clock.now += 2
    await buckets.take("later")
    assert len(buckets) == 1


async def test_an_empty_bucket_is_a_rate_limited_error_saying_when_to_retry() -> None:
    buckets = MemoryBuckets(Limit(capacity=1, rate=1 / 30), clock=Clock())
    await limit(buckets, "a", "password reset requests")
    with pytest.raises(RateLimited, match="too many password reset requests; try again in 30 s"):
        await limit(buckets, "a", "password reset requests")


async def test_with_redis_down_limits_fail_open_to_this_nodes_memory_then_go_back(
    tmp_path: Path,
) -> None:
    """Redis down: each take is answered at once from the node's own bucket, still limited
    (per node); for the retry window Redis is not asked at all; then it is used again. Logged
    once down and once up."""
    servers = [start_redis(tmp_path)]
    try:
        async with bridge.open_bridge():
            client = redis_client(servers[0].url, timeout=0.2)
            window = Clock()
            per_minute = Limit(capacity=2, rate=2 / 60)
            in_redis = RedisBuckets(client, per_minute, bucket="login_per_ip")
            buckets = FailOpenBuckets(
                in_redis, MemoryBuckets(per_minute), RedisOutage(retry_after=5.0, clock=window)
            )
            try:
                assert await buckets.take("a") == 0.0
                await trio.to_thread.run_sync(servers[0].stop)
                with structlog.testing.capture_logs() as logs:
                    with trio.fail_after(1.0):
                        waits = [await buckets.take("a") for _ in range(3)]
                    assert waits[:2] == [0.0, 0.0]  # this node's own bucket, full
                    assert waits[2] == pytest.approx(30.0, abs=1.0)
                    servers.append(await trio.to_thread.run_sync(restart_redis, servers[0]))
                    assert await buckets.take("b") == 0.0  # within the window: memory
                    with redis.Redis.from_url(servers[-1].url) as raw:
                        assert not raw.exists(in_redis.key("b"))
                        window.now += 5.0
                        assert await buckets.take("b") == 0.0
                        assert raw.exists(in_redis.key("b"))  # Redis's bucket again
                assert [entry["event"] for entry in logs] == [
                    "rate_limits_redis_down",
                    "rate_limits_redis_up",
                ]
            finally:
                await close_client(client)
    finally:
        servers[-1].stop()


# --- on a real node: every limited door answers 429 with Retry-After --------------------------
# Behind a trusted proxy (127.0.0.1), each client names its address in X-Forwarded-For, so one
# test speaks as several clients.

STRICT = (
    "login_per_address=2/60,login_per_ip=3/60,register_per_ip=2/60,refresh_per_ip=2/60,"
    "upload_per_user=3/3600,upload_per_ip=2/3600,socket_per_user=2/60,socket_per_ip=2/60,"
    "announce_per_user=2/60,announce_per_ip=3/60"
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(
        settings,
        rate_limits=parse_edge_limits(STRICT),
        trusted_proxies=parse_networks("127.0.0.1"),
    )


@asynccontextmanager
async def client_at(node: str, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from `address`, as the trusted proxy says."""
    headers = {"X-Forwarded-For": address}
    async with httpx.AsyncClient(base_url=node, timeout=10, headers=headers) as client:
        yield client


def assert_limited(response: httpx.Response, retry_after: int) -> None:
    """429 `rate_limited`, retry in `retry_after` s (one token's interval) less the time the
    test's requests took since the bucket's first take (a few seconds on a busy machine)."""
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert retry_after - 5 < int(response.headers["Retry-After"]) <= retry_after


async def try_login(api: httpx.AsyncClient, email: str) -> httpx.Response:
    return await api.post("/api/v1/auth/login", json={"email": email, "password": "wrong-guess"})


async def test_log_ins_are_limited_per_email_address_from_any_client(node: str) -> None:
    async with client_at(node, "198.51.100.1") as first, client_at(node, "198.51.100.2") as other:
        for _ in range(2):
            assert (await try_login(first, "ann@example.org")).status_code == 401
        # The address is limited wherever the guesses come from, whatever its case.
        assert_limited(await try_login(other, "ANN@example.org"), retry_after=30)
        assert (await try_login(other, "bob@example.org")).status_code == 401


async def test_log_ins_are_limited_per_client_for_any_address(node: str) -> None:
    async with client_at(node, "198.51.100.3") as busy, client_at(node, "198.51.100.4") as other:
        for n in range(3):
            assert (await try_login(busy, f"user{n}@example.org")).status_code == 401
        assert_limited(await try_login(busy, "user9@example.org"), retry_after=20)
        assert (await try_login(other, "user9@example.org")).status_code == 401


async def test_sign_ups_are_limited_per_client(node: str) -> None:
    async def register(api: httpx.AsyncClient, email: str) -> httpx.Response:
        body = {"email": email, "password": PASSWORD, "name": "New"}
        return await api.post("/api/v1/auth/register", json=body)

    async with client_at(node, "198.51.100.5") as busy, client_at(node, "198.51.100.6") as other:
        for n in range(2):
            assert (await register(busy, f"new{n}@example.org")).is_success
        assert_limited(await register(busy, "new9@example.org"), retry_after=30)
        assert (await register(other, "new9@example.org")).is_success


async def test_token_refreshes_are_limited_per_client(node: str) -> None:
    async with (
        client_at(node, "198.51.100.7") as home,
        client_at(node, "198.51.100.8") as busy,
        client_at(node, "198.51.100.9") as other,
    ):
        token = (await sign_up(home, "ann@example.org")).refresh_token
        for _ in range(2):
            refreshed = await busy.post("/api/v1/auth/refresh", json={"refresh_token": token})
            assert refreshed.status_code == 200, refreshed.text
            token = refreshed.json()["refresh_token"]
        assert_limited(
            await busy.post("/api/v1/auth/refresh", json={"refresh_token": token}), retry_after=30
        )
        refreshed = await other.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert refreshed.status_code == 200


async def test_uploads_are_limited_per_client_and_per_account(node: str) -> None:
    """tus creations and multipart uploads count alike, each before it is even checked."""

    async def tus(api: httpx.AsyncClient, who: Login) -> httpx.Response:
        return await api.post("/api/v1/uploads", headers={"Tus-Resumable": "1.0.0", **who.auth})

    async def multipart(api: httpx.AsyncClient, who: Login) -> httpx.Response:
        url = "/api/v1/courses/1/contents/1/video"
        return await api.post(url, files={"file": ("a.mp4", b"x")}, headers=who.auth)

    async with (
        client_at(node, "198.51.100.10") as first,
        client_at(node, "198.51.100.11") as second,
        client_at(node, "198.51.100.12") as third,
        client_at(node, "198.51.100.13") as elsewhere,
    ):
        ann = await sign_up(first, "ann@example.org")
        bob = await sign_up(elsewhere, "bob@example.org")
        assert (await tus(first, ann)).status_code != 429
        assert (await multipart(first, ann)).status_code != 429
        assert_limited(await tus(first, ann), retry_after=1800)  # 2 per hour from one client
        assert (await multipart(second, ann)).status_code != 429
        assert_limited(await tus(third, ann), retry_after=1200)  # 3 per hour for one account
        assert (await tus(elsewhere, bob)).status_code != 429


async def test_websocket_connections_are_limited_per_client_before_the_handshake(
    node: str,
) -> None:
    def connect(address: str) -> AbstractAsyncContextManager[WebSocketConnection]:
        headers = [(b"X-Forwarded-For", address.encode())]
        return open_websocket_url(ws_url(node, NOTIFICATIONS), extra_headers=headers)

    for _ in range(2):
        async with connect("198.51.100.14"):
            pass
    with pytest.raises(ConnectionRejected) as rejected:
        async with connect("198.51.100.14"):
            pass
    assert rejected.value.status_code == 429
    assert 25 < int(dict(rejected.value.headers)[b"retry-after"]) <= 30
    assert rejected.value.body is not None
    assert json.loads(rejected.value.body)["error"]["code"] == "rate_limited"
    async with connect("198.51.100.15"):
        pass


async def test_websocket_connections_are_limited_per_account_after_auth(
    node: str, api: httpx.AsyncClient
) -> None:
    ann = await sign_up(api, "ann@example.org")
    bob = await sign_up(api, "bob@example.org")
    for n in range(2):
        headers = [(b"X-Forwarded-For", f"198.51.100.{20 + n}".encode())]
        async with live_socket(node, NOTIFICATIONS, ann.access_token, extra_headers=headers):
            pass
    headers = [(b"X-Forwarded-For", b"198.51.100.22")]
    async with open_websocket_url(ws_url(node, NOTIFICATIONS), extra_headers=headers) as ws:
        await ws.send_message(json.dumps({"type": "auth", "token": ann.access_token}))
        error = json.loads(await ws.get_message())
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert (error["code"], closed.value.reason.code) == ("rate_limited", 4429)
    assert re.search(r"try again in (2[6-9]|30) s", error["message"])
    async with live_socket(node, NOTIFICATIONS, bob.access_token, extra_headers=headers) as sock:
        assert sock.welcome["user_id"] == bob.user_id


async def test_announcements_are_limited_per_account_and_per_client(
    node: str, settings: Settings
) -> None:
    async def announce(api: httpx.AsyncClient, who: Login, course_id: int) -> httpx.Response:
        url = f"/api/v1/courses/{course_id}/announcements"
        return await api.post(url, json={"text": "Exam on Friday"}, headers=who.auth)

    for email in ("root@example.org", "deputy@example.org"):
        await commands.create_admin(settings, email, PASSWORD)
    async with (
        client_at(node, "198.51.100.30") as office,
        client_at(node, "198.51.100.31") as home,
    ):
        root = await log_in(office, "root@example.org")
        deputy = await log_in(home, "deputy@example.org")
        course = await office.post("/api/v1/courses", json={"title": "Optics"}, headers=root.auth)
        course_id = course.json()["id"]
        for _ in range(2):
            assert (await announce(office, root, course_id)).status_code == 201
        assert_limited(await announce(home, root, course_id), retry_after=30)  # per account
        assert (await announce(office, deputy, course_id)).status_code == 201
        assert_limited(await announce(office, deputy, course_id), retry_after=20)  # per client
        assert (await announce(home, deputy, course_id)).status_code == 201


async def test_a_user_holds_at_most_max_sockets_per_user_open_on_a_node(
    nursery: trio.Nursery, settings: Settings
) -> None:
    node = await nursery.start(
        serve, replace(settings, rate_limits=DEFAULT_EDGE_LIMITS, max_sockets_per_user=2)
    )
    async with httpx.AsyncClient(base_url=node, timeout=10) as api:
        ann = await sign_up(api, "ann@example.org")
        bob = await sign_up(api, "bob@example.org")
    async with (
        live_socket(node, NOTIFICATIONS, ann.access_token),
        live_socket(node, NOTIFICATIONS, ann.access_token) as laptop,
    ):
        error, code = await refused_after_auth(node, ann.access_token)
        assert (error["code"], code) == ("too_many_sockets", 4429)
        async with live_socket(node, NOTIFICATIONS, bob.access_token):
            pass  # another user is not held up
        await laptop.ws.aclose()

        async def third_socket() -> bool:
            async with open_websocket_url(ws_url(node, NOTIFICATIONS)) as ws:
                await ws.send_message(json.dumps({"type": "auth", "token": ann.access_token}))
                return json.loads(await ws.get_message())["type"] == "welcome"

        # Closing one makes room (its session lets it go as the socket's handler ends).
        assert await eventually(third_socket, bool, within=10)


async def refused_after_auth(node: str, token: str) -> tuple[dict[str, Any], int]:
    async with open_websocket_url(ws_url(node, NOTIFICATIONS)) as ws:
        await ws.send_message(json.dumps({"type": "auth", "token": token}))
        error = json.loads(await ws.get_message())
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    return error, closed.value.reason.code
