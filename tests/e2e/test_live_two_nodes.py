"""Two real nodes on one PostgreSQL and one Redis: the live layer across nodes, with
trio-websocket clients, through a slow client and a Redis outage."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, wrap_client_stream

from tests.e2e.nodes import SECRET, NodeProcess, node_env, run_cli, start_node
from tests.live_client import LiveClient, live_socket, progress_path
from tests.live_setup import Course, make_course
from tests.lms.http.conftest import Login, log_in, make_instructor, sign_up
from tests.redis_restart import restart_redis
from tests.services import RunningRedis, start_redis

pytestmark = pytest.mark.e2e


@dataclass
class Cluster:
    a: NodeProcess
    b: NodeProcess
    redis: RunningRedis
    course: Course
    instructor: Login
    learner: Login


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    """Nodes a and b, a course with a video, its instructor and an enrolled learner. Redis is
    this test's own, so that it can be taken away."""
    redis = start_redis(tmp_path)
    env = node_env(
        tmp_path, LMS_DATABASE_URL=database_url, LMS_REDIS_URL=redis.url, LMS_SECRET_KEY=SECRET
    )
    created = await run_cli(
        "createadmin", "--email", "root@x.org", "--password", "pw-12345678", env=env
    )
    assert created.returncode == 0, created.stderr.decode()
    nodes: dict[str, NodeProcess] = {}
    cluster = None
    try:
        async with trio.open_nursery() as nursery:
            for name in ("a", "b"):

                async def start(name: str = name) -> None:
                    env_of = env | {"LMS_NODE_ID": name}
                    nodes[name] = await start_node(env_of, tmp_path / f"{name}.log")

                nursery.start_soon(start)
        async with httpx.AsyncClient(base_url=nodes["a"].url, timeout=10) as api:
            admin = await log_in(api, "root@x.org", "pw-12345678")
            instructor = await make_instructor(api, admin, "teacher@x.org")
            learner = await sign_up(api, "learner@x.org")
            course = await make_course(api, database_url, instructor, learner)
        cluster = Cluster(nodes["a"], nodes["b"], redis, course, instructor, learner)
        yield cluster
    finally:
        for node in nodes.values():
            await node.stop()
        # An outage test replaces the Redis it restarts: stop the one running now.
        (redis if cluster is None else cluster.redis).stop()


async def subscribed(client: LiveClient, since: dict | None = None) -> dict:
    await client.send({"type": "subscribe", "since": since})
    return await client.expect("resync" if since else "snapshot")


async def test_devices_and_instructors_on_different_nodes_see_each_other_live(
    cluster: Cluster,
) -> None:
    c, room = cluster, progress_path(cluster.course.id)
    async with (
        live_socket(c.b.url, room, c.instructor.access_token) as teacher,
        live_socket(c.a.url, room, c.learner.access_token, device_id="laptop") as laptop,
        live_socket(c.b.url, room, c.learner.access_token, device_id="phone") as phone,
    ):
        await subscribed(teacher)
        await subscribed(laptop)
        seen = await teacher.expect("presence", event="join", wait=5)
        assert seen["member"]["conn"].startswith("a/")  # a learner on node a, seen from b

        await laptop.heartbeat(1, content_id=c.course.video_id, position=90.0, played=[[0, 90]])
        resumed = await phone.expect("progress", content_id=c.course.video_id)
        assert (resumed["position"], resumed["device_id"]) == (90.0, "laptop")
        live = await teacher.expect("progress", user_id=c.learner.user_id)
        assert live["coverage"] == pytest.approx(0.15)

        await teacher.send({"type": "announcement", "text": "Break: 10 minutes", "id": 1})
        await teacher.expect("ack", id=1)
        assert (await laptop.expect("announcement"))["text"] == "Break: 10 minutes"


async def test_a_client_reconnecting_to_its_node_resumes_and_to_another_resyncs(
    cluster: Cluster,
) -> None:
    c, room = cluster, progress_path(cluster.course.id)
    async with live_socket(c.a.url, room, c.learner.access_token) as student:
        snapshot = await subscribed(student)
    since = {"epoch": snapshot["epoch"], "seq": snapshot["seq"]}
    async with live_socket(c.b.url, room, c.instructor.access_token) as teacher:
        await teacher.send({"type": "announcement", "text": "while you were away", "id": 1})
        await teacher.expect("ack", id=1)
    async with live_socket(c.a.url, room, c.learner.access_token) as student:
        await student.send({"type": "subscribe", "since": since})
        assert (await student.expect("announcement"))["text"] == "while you were away"
    async with live_socket(c.b.url, room, c.learner.access_token) as student:
        resync = await subscribed(student, since)
        assert resync["reason"] == "epoch"
        await student.expect("snapshot")


@asynccontextmanager
async def sluggish_socket(url: str, path: str, token: str) -> AsyncIterator[LiveClient]:
    """A client with a tiny receive buffer, so that when it stops reading, the server's writes
    back up after a few kilobytes instead of megabytes."""
    parts = urlsplit(url)
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((parts.hostname, parts.port))
    async with trio.open_nursery() as nursery:
        stream = trio.SocketStream(sock)
        ws = await wrap_client_stream(nursery, stream, parts.hostname, path, message_queue_size=0)
        client = LiveClient(ws)
        await client.send({"type": "auth", "token": token})
        client.welcome = await client.expect("welcome")
        yield client
        await ws.aclose()


async def test_a_client_that_stops_reading_is_cut_off_and_the_room_goes_on(
    cluster: Cluster,
) -> None:
    c, room = cluster, progress_path(cluster.course.id)
    text = "x" * 4000
    async with (
        live_socket(c.a.url, room, c.instructor.access_token) as teacher,
        live_socket(c.a.url, room, c.learner.access_token) as keeps_up,
        sluggish_socket(c.a.url, room, c.learner.access_token) as stalls,
    ):
        await subscribed(teacher)
        await subscribed(keeps_up)
        await subscribed(stalls)
        # From here on `stalls` reads nothing: the node's writes to it back up, then its queue,
        # and the room lets it go (its instructor sees it leave), while the others keep up.
        stalled = stalls.welcome["conn"]
        n = 0
        with trio.fail_after(30):
            while not _left(teacher, stalled):
                n += 1
                await teacher.send({"type": "announcement", "text": text, "id": n})
                await teacher.expect("ack", id=n)
                assert (await keeps_up.expect("announcement", wait=2))["text"] == text
        assert await close_code(stalls) == 1013  # it reads again: what was in flight, then this


def _heard_progress(client: LiveClient, learner: Login, position: float) -> bool:
    return any(
        f["type"] == "progress" and f["user_id"] == learner.user_id and f["position"] == position
        for f in client.seen
    )


def _heard_join(client: LiveClient, learner: Login) -> bool:
    return any(
        f["type"] == "presence"
        and f["event"] == "join"
        and f["member"]["user_id"] == learner.user_id
        for f in client.seen
    )


def _left(client: LiveClient, conn: str) -> bool:
    return any(f.get("event") == "leave" and f["member"]["conn"] == conn for f in client.seen)


async def close_code(client: LiveClient) -> int:
    with trio.fail_after(10):
        try:
            while True:
                await client.receive()
        except ConnectionClosed as closed:
            return closed.reason.code


async def test_each_node_serves_its_clients_through_a_redis_outage_and_catches_up(
    cluster: Cluster,
) -> None:
    c, room = cluster, progress_path(cluster.course.id)
    async with (
        live_socket(c.a.url, room, c.instructor.access_token) as teacher_a,
        live_socket(c.b.url, room, c.instructor.access_token) as teacher_b,
        live_socket(c.a.url, room, c.learner.access_token) as learner_a,
    ):
        await subscribed(teacher_a)
        await subscribed(teacher_b)
        await teacher_b.expect("presence", event="join", wait=5)  # teacher_a, from node a
        await trio.to_thread.run_sync(c.redis.stop)

        # Node a keeps serving its own clients: the heartbeat is stored, and a's instructor
        # sees it at once; a learner joining during the outage is seen on a only.
        ack = await learner_a.heartbeat(
            1, content_id=c.course.video_id, position=30.0, played=[[0, 30]]
        )
        assert ack["type"] == "ack"
        await teacher_a.expect("progress", user_id=c.learner.user_id)
        await subscribed(learner_a)
        await teacher_a.expect("presence", event="join")

        c.redis = await trio.to_thread.run_sync(restart_redis, c.redis)
        # Once the link is back, b catches up (from what a queued, or a's presence and progress
        # sent again, whichever reaches it: either order), and hears a live again.
        with trio.fail_after(15):
            while not (
                _heard_progress(teacher_b, c.learner, 30.0) and _heard_join(teacher_b, c.learner)
            ):
                await teacher_b.record()
        await learner_a.heartbeat(2, content_id=c.course.video_id, position=45.0, played=[[30, 45]])
        fresh = await teacher_b.expect("progress", user_id=c.learner.user_id, wait=5)
        assert fresh["position"] == 45.0
