"""What the request edge's access log and per-request metrics cost, and /health beside a bare
route.

    python -m tests.bench.edge [--slice 3] [--turns 5] [--warmup 1] [--observed 20000]
                               [--keep DIR] [--quick]

Two real nodes (`lms serve`, one database, no transcode workers) on CPU 0: one as deployed, with
LMS_ACCESS_LOG and LMS_METRICS on (JSON lines to a file, as a log shipper reads them), one with
both off; and a bare Quart-Trio route on Hypercorn's trio worker with the node's Hypercorn and
collector settings, answering the node's `/health` bytes (this module, run with `--bare`). `wrk`
(64 connections, on the other core with PostgreSQL) takes turns on the servers, `--turns` of
`--slice` s each: the bare route, `/health` on each node (no I/O), and `GET /api/v1/users/me` on
each node (Bearer; the caller's row comes from the node's cache). A node's CPU per request is
its process's CPU time (/proc/<pid>/stat) over each turn, divided by the requests.

Before the servers start, the observer's own cost (`lms/observability/requests.py`) is timed in
process on CPU 0, around an ASGI app that answers at once, with the node's logging set-up (JSON
lines to a file): with both on, with metrics only, and with both off. Beside the node's CPU per
request it says what the wrk turns, noisy on a shared machine, should show.

Targets: the access log and metrics add <= 10 % CPU per request on each route (on against
off); `/health` with both on >= 0.9x the bare route's requests/s (per CPU-second when the bare
route did not fill its core: tests/bench/streaming.py's `judged`).

Needs `wrk` (`make bench` installs it). Uses LMS_TEST_DATABASE_URL when set, else starts a
throwaway PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog
import trio
from quart import Response
from quart_trio import QuartTrio

from lms.http.asgi import ASGIApp, Message, Receive, Scope, Send
from lms.observability.logging import configure_logging
from lms.observability.requests import RequestObserver
from tests.bench.bare_server import serve_until_signalled
from tests.bench.harness import parse_wrk_args, pin, scratch_database, wrk_parser
from tests.bench.live import NODE_CPU, core_speed
from tests.bench.streaming import (
    LOAD_CPUS,
    WRK_SCRIPT,
    Load,
    Server,
    Turn,
    judged,
    run_wrk,
    start_peer,
    stop_process,
    summary,
)
from tests.e2e.nodes import SECRET, NodeProcess, node_env, start_node

CPU_TARGET = 1.10  # on / off, CPU per request
HEALTH_RATIO_TARGET = 0.9
BARE = "bare Quart-Trio route (the /health bytes)"
HEALTH_ON, HEALTH_OFF = "node GET /health, log + metrics on", "node GET /health, both off"
ME_ON, ME_OFF = "node GET /api/v1/users/me, on", "node GET /api/v1/users/me, off"
PAIRS = [(HEALTH_ON, HEALTH_OFF), (ME_ON, ME_OFF)]


# --- the baseline server (run with --bare) -----------------------------------------------------


def serve_bare(body: bytes) -> None:
    """The bare route: `GET /health` answers `body` as the node's does, nothing else runs."""
    app = QuartTrio("bare")

    @app.get("/health")
    async def health() -> Response:
        return Response(body, content_type="application/json")

    trio.run(serve_until_signalled, app)


# --- in process --------------------------------------------------------------------------------


async def observer_cost(root: Path, n: int) -> dict[str, float]:
    """Microseconds per request the observer adds around an app that answers at once, with
    the node's logging (JSON, info) writing to a file: both on, metrics only, both off."""
    body = b"x" * 200

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        pass

    async def per_request(app: ASGIApp) -> float:
        started = time.perf_counter()
        for _ in range(n):
            scope = {"type": "http", "method": "GET", "path": "/health", "headers": []}
            await app(scope, receive, send)
        return (time.perf_counter() - started) / n * 1e6

    configure_logging("info", "json")
    [handler] = logging.getLogger().handlers
    with (root / "observer.log").open("w") as log_file:
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(log_file)
        try:
            alone = await per_request(answer)
            return {
                name: await per_request(RequestObserver(answer, access_log=log, metrics=count))
                - alone
                for name, log, count in (
                    ("both on", True, True),
                    ("metrics only", False, True),
                    ("both off", False, False),
                )
            }
        finally:
            structlog.reset_defaults()
            logging.getLogger().handlers.clear()


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Servers:
    on: NodeProcess
    off: NodeProcess
    bare_url: str
    bare_pid: int
    bearer: dict[str, str]


@contextlib.asynccontextmanager
async def servers_up(dsn: str, root: Path) -> AsyncIterator[Servers]:
    common = {
        "LMS_DATABASE_URL": dsn,
        "LMS_SECRET_KEY": SECRET,
        "LMS_LOG_LEVEL": "info",
        "LMS_SEED_DEMO": "false",
        "LMS_TRANSCODE_WORKERS": "0",
    }
    off = {"LMS_ACCESS_LOG": "false", "LMS_METRICS": "false"}
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for name, extra in (("on", {}), ("off", off)):
            env = node_env(root / name, **common, **extra)
            node = await start_node(env, root / f"node-{name}.log")
            stack.push_async_callback(stop_process, node.process)
            pin(node.process.pid, NODE_CPU)
            nodes.append(node)
        on, off_node = nodes
        async with httpx.AsyncClient(base_url=on.url, timeout=30) as client:
            body = (await client.get("/health")).content
            bearer = await _signed_up(client)
        argv = [sys.executable, "-m", "tests.bench.edge", "--bare", body.hex()]
        bare_url, bare = await start_peer(argv, root / "bare.log", "the bare route")
        stack.push_async_callback(stop_process, bare)
        pin(bare.pid, NODE_CPU)
        async with httpx.AsyncClient(timeout=30) as client:
            assert (await client.get(f"{bare_url}/health")).content == body
            for node in nodes:
                me = await client.get(f"{node.url}/api/v1/users/me", headers=bearer)
                assert me.status_code == 200, me.text
        yield Servers(on, off_node, bare_url, bare.pid, bearer)


async def _signed_up(client: httpx.AsyncClient) -> dict[str, str]:
    email, password = f"edge-{uuid.uuid4().hex[:8]}@bench.lms", "edge-bench-password"
    registered = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": "Edge"}
    )
    assert registered.status_code == 202, registered.text
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def measure(
    servers: Servers, args: argparse.Namespace, script: Path
) -> tuple[dict[str, dict[str, float]], Load]:
    load = Load("GETs", 64, 0, args.slice, "req/s", "req/CPU-s")
    on, off = [servers.on.process.pid], [servers.off.process.pid]
    targets = [
        Server(BARE, f"{servers.bare_url}/health", lambda: [servers.bare_pid]),
        Server(HEALTH_ON, f"{servers.on.url}/health", lambda: on),
        Server(HEALTH_OFF, f"{servers.off.url}/health", lambda: off),
        Server(ME_ON, f"{servers.on.url}/api/v1/users/me", lambda: on, servers.bearer),
        Server(ME_OFF, f"{servers.off.url}/api/v1/users/me", lambda: off, servers.bearer),
    ]
    for server in targets:
        await run_wrk(server, load, 0, script, args.warmup)
    turns: dict[str, list[Turn]] = {server.name: [] for server in targets}
    for _ in range(args.turns):
        for server in targets:
            turn = await run_wrk(server, load, 0, script, args.slice)
            assert turn.errors == 0, (server.name, turn)
            turns[server.name].append(turn)
            print(json.dumps({"server": server.name, **vars(turn)}), flush=True)
    return {name: summary(server_turns) for name, server_turns in turns.items()}, load


def print_table(
    figures: dict[str, dict[str, float]],
    load: Load,
    observer: dict[str, float],
    args: argparse.Namespace,
) -> list[tuple[str, bool]]:
    print(
        f"\nedge, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs "
        f"(servers on CPU {','.join(map(str, sorted(NODE_CPU)))}, PostgreSQL and wrk on "
        f"{','.join(map(str, sorted(LOAD_CPUS)))}); wrk {load.connections} connections, "
        f"{args.turns} turns of {args.slice} s per server"
    )
    print("| server | req/s | p50 ms | p99 ms | CPU % | CPU us/request | vs off | vs bare |")
    print("|---|---|---|---|---|---|---|---|")
    off_of = {on: off for on, off in PAIRS}
    bare = figures[BARE]
    for name, row in figures.items():
        cpu_us = 1e6 / row["req/CPU-s"]
        cells = [f"{row[c]:,.1f}" for c in ("req/s", "p50 ms", "p99 ms", "CPU %")]
        cells.append(f"{cpu_us:,.0f}")
        off = off_of.get(name)
        cells.append("-" if off is None else f"{figures[off]['req/CPU-s'] / row['req/CPU-s']:.3f}x")
        cells.append(f"{row['req/s'] / bare['req/s']:.2f}x")
        print(f"| {name} | {' | '.join(cells)} |")
    health_off_us = 1e6 / figures[HEALTH_OFF]["req/CPU-s"]
    print(
        f"\nthe observer in process, {args.observed:,} requests: "
        + ", ".join(f"{name} +{us:.1f} us/request" for name, us in observer.items())
        + f"; both on is {observer['both on'] / health_off_us:.1%} of /health's CPU per request"
        " with both off"
    )
    targets = []
    for on, off in PAIRS:
        ratio = figures[off]["req/CPU-s"] / figures[on]["req/CPU-s"]
        targets.append(
            (
                f"{on}: CPU per request <= {CPU_TARGET:.2f}x with both off ({ratio:.3f}x)",
                ratio <= CPU_TARGET,
            )
        )
    targets.append(judged(figures, HEALTH_ON, BARE, load, HEALTH_RATIO_TARGET))
    print("\ntargets:")
    for target, met in targets:
        print(f"  {'met   ' if met else 'MISSED'}  {target}")
    return targets


async def bench(dsn: str, root: Path, args: argparse.Namespace) -> None:
    script = root / "wrk.lua"
    script.write_text(WRK_SCRIPT)
    pin(os.getpid(), NODE_CPU)
    observer = await observer_cost(root, args.observed)
    pin(os.getpid(), LOAD_CPUS)
    async with core_speed() as probe, servers_up(dsn, root) as servers:
        figures, load = await measure(servers, args, script)
    print_table(figures, load, observer, args)
    print(f"core probe {probe.median_us:.0f} us (tests/bench/core_speed.py)")


QUICK = {"slice": 2, "turns": 2, "warmup": 1, "observed": 5000}


def main() -> None:
    if sys.argv[1:2] == ["--bare"]:
        serve_bare(bytes.fromhex(sys.argv[2]))
        return
    parser = wrk_parser(__doc__.splitlines()[0], slice_s=3, turns=5, warmup=1)
    parser.add_argument(
        "--observed", type=int, default=20_000, help="requests timed through the observer"
    )
    args = parse_wrk_args(parser, "edge", QUICK)
    with scratch_database("lms-bench-edge-", args.keep) as (root, dsn):
        trio.run(bench, dsn, root, args)


if __name__ == "__main__":
    main()
