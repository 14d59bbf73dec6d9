"""Production's front door: a real nginx from deploy/nginx/lms.conf, with TLS from a throwaway
certificate, in front of two real nodes on one PostgreSQL and one Redis.

What a browser or an API client relies on there: HTTPS with HTTP/2, requests spread over both
nodes, WebSockets upgraded through it, sign-in floods cut off with 429, the security headers on
every answer (without overriding a page's own stricter ones), compressed JSON and playlists,
signed media ranges sent by nginx itself, and metrics kept from the public.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from lms.domain.media_urls import expiry, parse_keys, signed_prefix
from lms.http.docs import POLICY as DOCS_POLICY
from lms.store.postgres_cluster import pick_free_port
from tests.e2e.nodes import SECRET, NodeProcess, node_env, start_node
from tests.live_client import NOTIFICATIONS, live_socket
from tests.nginx import Nginx, Tls, render_lms_conf, start_nginx, throwaway_tls, write_media_keys
from tests.services import scratch_dir

pytestmark = pytest.mark.e2e

MEDIA_KEYS = f"k1:{'t' * 40}"
NODE_IDS = {"node-a", "node-b"}
# lms.conf's auth zone: this many sign-in requests pass at once (the burst and the one the rate
# allows), the next is refused until the bucket leaks (one every 2 s).
AUTH_BURST = 61
SECURITY_HEADERS = {
    "strict-transport-security": "max-age=63072000",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


@dataclass
class Edge:
    nodes: list[NodeProcess]
    nginx: Nginx
    tls: Tls
    media: Path  # nginx's media volume; the nodes have another, so what it serves is nginx's
    redirect_port: int

    def client(self, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
        """An HTTP/2 client of nginx that trusts the throwaway certificate (or `transport`'s)."""
        return httpx.AsyncClient(
            base_url=self.nginx.url,
            http2=True,
            verify=self.tls.client_context(),
            timeout=10,
            transport=transport,
        )


@pytest.fixture
async def edge(database_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Edge]:
    """nginx's files and media volume are in a scratch dir: its workers run as nobody."""
    with scratch_dir("lms-e2e-nginx-tls-") as root:
        nodes: list[NodeProcess] = []

        async def start(node_id: str) -> None:
            env = node_env(
                tmp_path / node_id,
                LMS_NODE_ID=node_id,
                LMS_DATABASE_URL=database_url,
                LMS_REDIS_URL=redis_url,
                LMS_SECRET_KEY=SECRET,
                LMS_TRANSCODE_WORKERS="0",
                LMS_MEDIA_KEYS=MEDIA_KEYS,
            )
            nodes.append(await start_node(env, tmp_path / f"{node_id}.log"))

        conf_dir = root / "nginx"
        conf_dir.mkdir()
        keys_file = conf_dir / "media_keys.conf"
        async with trio.open_nursery() as nursery:
            for node_id in sorted(NODE_IDS):
                nursery.start_soon(start, node_id)
            nursery.start_soon(write_media_keys, MEDIA_KEYS, keys_file)
            tls = await throwaway_tls(conf_dir)
        media = root / "media"
        media.mkdir()
        upstreams = [urlsplit(node.url).netloc for node in nodes]
        redirect_ports: list[int] = []

        def conf(port: int) -> str:
            # A new redirect port on each of start_nginx's attempts, as it picks a new `port`.
            redirect_ports.append(pick_free_port())
            return render_lms_conf(
                port=port,
                upstreams=upstreams,
                media_root=media,
                keys_file=keys_file,
                tls=tls,
                redirect_port=redirect_ports[-1],
            )

        nginx = await start_nginx(conf_dir, conf, scheme="https")
        try:
            yield Edge(nodes, nginx, tls, media, redirect_ports[-1])
        finally:
            with trio.CancelScope(shield=True):
                await nginx.stop()
                for node in nodes:
                    assert await node.stop() == 0


async def test_answers_come_over_http2_from_both_nodes_compressed_and_with_security_headers(
    edge: Edge,
) -> None:
    async with edge.client() as client:
        seen = set()
        for _ in range(8):
            health = await client.get("/health")
            assert health.http_version == "HTTP/2"  # ALPN chose h2
            seen.add(health.json()["node_id"])
        assert seen == NODE_IDS

        api = await client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
        assert api.status_code == 200
        assert api.headers["content-encoding"] == "gzip"
        assert api.json()["paths"]  # httpx inflated it

        page = await client.get("/admin/jobs")
        reset_page = await client.get("/reset-password")  # its token is in the URL
        docs = await client.get("/docs")
        by_nginx = await client.get("/media/not-signed")
    for answer in (page, reset_page, health, docs, by_nginx):
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get_list(name) == [value], (answer.url, name)
    assert by_nginx.status_code == 403

    # Pages: scripts from /static only, hls.js's blob: media and worker, no framing.
    assert page.status_code == 200
    [policy] = page.headers.get_list("content-security-policy")
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["script-src"] == ["'self'"]
    assert directives["media-src"] == ["'self'", "blob:"]
    assert directives["worker-src"] == ["'self'", "blob:"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert health.headers.get_list("content-security-policy") == [policy]
    # The node's own, stricter choices stand alone, not beside nginx's.
    assert reset_page.headers.get_list("referrer-policy") == ["no-referrer"]
    assert docs.headers.get_list("content-security-policy") == [DOCS_POLICY]
    for answer in (page, health):
        assert answer.headers.get_list("referrer-policy") == ["strict-origin-when-cross-origin"]

    # Plain HTTP only points at HTTPS.
    async with httpx.AsyncClient() as plain:
        answer = await plain.get(f"http://127.0.0.1:{edge.redirect_port}/watch/1?t=5")
    assert answer.status_code == 301
    assert answer.headers["location"] == "https://127.0.0.1/watch/1?t=5"


async def test_a_websocket_upgrades_through_nginx_over_tls(edge: Edge) -> None:
    account = {"email": "wss@school.org", "password": "learner-password"}
    async with edge.client() as client:
        registered = await client.post("/api/v1/auth/register", json={**account, "name": "W"})
        assert registered.status_code == 202, registered.text
        login = await client.post("/api/v1/auth/login", json=account)
        assert login.status_code == 200
    token = login.json()["access_token"]
    wss = edge.nginx.url.replace("https://", "wss://", 1)
    context = edge.tls.client_context()
    async with live_socket(wss, NOTIFICATIONS, token, ssl_context=context) as socket:
        assert socket.welcome["conn"].split("/")[0] in NODE_IDS
        await socket.send({"type": "ping", "t": 7.5})
        await socket.expect("pong", t=7.5)


async def test_a_signed_range_is_sent_by_nginx_over_http2_and_playlists_gzipped(
    edge: Edge,
) -> None:
    # In nginx's volume only: no node could answer for these files.
    fileset = f"videos/7/{uuid.uuid4()}"
    files = edge.media / fileset
    await trio.Path(files).mkdir(parents=True)
    video = os.urandom(64 * 1024)
    await trio.Path(files / "720p.mp4").write_bytes(video)
    playlist = "#EXTM3U\n" + "".join(f"#EXTINF:2.0,\nseg_{i:05}.m4s\n" for i in range(200))
    await trio.Path(files / "720p.m3u8").write_text(playlist)
    # Readable by nginx's workers, which run as nobody, whatever this process's umask.
    for directory in (files.parent.parent, files.parent, files):
        directory.chmod(0o755)
    for file in files.iterdir():
        file.chmod(0o644)
    [key] = parse_keys(MEDIA_KEYS)
    prefix = signed_prefix(key, expiry(time.time(), 3600), fileset)

    async with edge.client() as client:
        ranged = await client.get(f"{prefix}/720p.mp4", headers={"Range": "bytes=1000-4999"})
        listed = await client.get(f"{prefix}/720p.m3u8", headers={"Accept-Encoding": "gzip"})
    assert ranged.http_version == "HTTP/2"
    assert ranged.status_code == 206
    assert ranged.content == video[1000:5000]
    assert ranged.headers["content-range"] == f"bytes 1000-4999/{len(video)}"
    assert ranged.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (
        ranged.headers["strict-transport-security"] == SECURITY_HEADERS["strict-transport-security"]
    )
    assert listed.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert listed.headers["content-encoding"] == "gzip"
    assert listed.text == playlist


async def test_sign_in_floods_and_outside_metrics_scrapes_are_refused_by_nginx(
    edge: Edge,
) -> None:
    async with edge.client() as client:
        # Bodies the node refuses at once (422): what is counted is requests, not passwords.
        statuses = [(await client.post("/api/v1/auth/login", json={})).status_code]
        while statuses[-1] != 429 and len(statuses) < AUTH_BURST + 5:
            statuses.append((await client.post("/api/v1/auth/login", json={})).status_code)
        assert set(statuses[:AUTH_BURST]) == {422}, statuses
        assert statuses[-1] == 429, statuses

        refused = await client.post("/api/v1/auth/login", json={})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        assert (
            refused.headers["strict-transport-security"]
            == SECURITY_HEADERS["strict-transport-security"]
        )
        # Only the auth endpoints: the same client is still served elsewhere.
        assert (await client.get("/health")).status_code == 200

    # Metrics: for this host (and the scraper on the nodes' network), not for the public.
    async with httpx.AsyncClient(base_url=edge.nodes[0].url) as direct:
        expected = (await direct.get("/metrics")).status_code
    outside = httpx.AsyncHTTPTransport(
        local_address="127.0.0.2", http2=True, verify=edge.tls.client_context()
    )
    async with edge.client() as here, edge.client(transport=outside) as elsewhere:
        for path in ("/metrics", "/api/v1/monitoring/metrics", "/metric%73"):
            assert (await elsewhere.get(path)).status_code == 403, path
        assert (await here.get("/metrics")).status_code == expected
        assert (await elsewhere.get("/health")).status_code == 200
