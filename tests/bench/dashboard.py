"""Course analytics through the node's cache, and authenticated JSON GETs beside a bare route.

    python -m tests.bench.dashboard [--learners 5000] [--videos 50] [--days 30] [--cold 9]
                                    [--reads 2000] [--uncached 18] [--http 200] [--probe 500]
                                    [--slice 5] [--turns 3] [--warmup 2] [--keep DIR]
                                    [--quick]

A course of `--learners` enrolled learners and `--videos` videos, with their progress (played
segments: most watched a prefix, some skipped around) and hourly activity over `--days` days, is
seeded straight into PostgreSQL (tests/analytics_seed.py). Then, in one run:

In process, the benchmark itself on CPU 0 (PostgreSQL and Redis on the other core), through
`Analytics.course` as the dashboard route calls it (the clock held at the run's start, so every
read asks for the same hour's key):
- cold, `--cold` times: each on a new cache over a new Redis namespace (both tiers empty): the
  course's row (the access check), the store's read, the numpy rules, encoding, storing in both
  tiers; the answer is the JSON bytes the route sends, never decoded;
- warm, memory tier, `--reads` reads of the answer the memory tier holds;
- warm, Redis tier, `--reads` reads through a cache whose memory tier is too small for the
  answer (as if it were evicted before every read) but keeps the course's small row: a Redis
  round trip through the bridge;
- uncached, `--uncached` times: the same small memory tier and no Redis tier, so every read
  computes the answer (and encodes it).
Each tier's counters (`Cache.statistics`) are checked: these reads were what they are called.

Over HTTP, a real node (`lms serve`, Redis configured) on CPU 0 and one client on the other:
- cold, `--cold` times: an edit of the course (PATCH, which invalidates its tag), then the GET;
- warm, `--http` GETs one after another.

Then JSON GETs under load from wrk (tests/bench/streaming.py's harness; 64 connections, on the
other core) against servers on CPU 0 taking turns, `--turns` of `--slice` s each: the bare
Quart-Trio route (tests/bench/json_bare.py), the node's `/health` (its middleware, no I/O) and
its authenticated `GET /api/v1/users/me` and `GET /api/v1/dashboard/stats` (a learner's
dashboard, from the cache). Beside each, the PostgreSQL transactions per request, counted over
`--probe` requests sent one after another before the load, less what the node runs with no
request (its pollers, counted over a window as long with none): 0 means the route's reads came
from the cache. (pg_stat_database: PostgreSQL publishes a backend's counts within 10 s of its
going idle, so each count waits that long.)

Targets: cold <= 500 ms in process (the median), warm p99 <= 2 ms in process from each tier,
`/users/me` >= 0.7x the bare route's requests/s (per CPU-second when the bare route did not fill
its core: tests/bench/streaming.py's `judged`).

Needs `wrk` and `redis-server` (`make bench` installs wrk; `make system-deps` Redis). Uses
LMS_TEST_DATABASE_URL and LMS_TEST_REDIS_URL when set, else starts throwaway servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import trio

from lms.accounts.tokens import TokenIssuer
from lms.analytics.service import Analytics
from lms.cache.cache import Cache
from lms.cache.redis_tier import RedisTier
from lms.domain.access import Principal
from lms.heap import settle_after_startup
from lms.node import CACHE_MAX_TTL
from lms.store.bridge import open_bridge
from lms.store.cache_tier import CacheTierStore
from lms.store.database import Database
from proto.api import Role
from tests.analytics_seed import AnalyticsCourse, seed_analytics_course
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
from tests.services import start_redis

NODE_MAX_BYTES = 64 << 20  # the node's default LMS_CACHE_MAX_BYTES
STATS_FLUSH = 11.0  # s: PostgreSQL's PGSTAT_IDLE_INTERVAL (10 s), and a second to spare
COLD_TARGET_MS = 500.0
WARM_TARGET_MS = 2.0
GET_RATIO_TARGET = 0.7
BARE, HEALTH, ME, STATS = (
    "bare Quart-Trio JSON route",
    "node GET /health (middleware, no I/O)",
    "node GET /api/v1/users/me (Bearer)",
    "node GET /api/v1/dashboard/stats (Bearer)",
)


@dataclass(frozen=True)
class Timings:
    """One kind of read: what it is, and how long each took (seconds)."""

    name: str
    seconds: list[float]

    def row(self) -> str:
        ms = np.array(self.seconds) * 1000
        p50, p99 = np.percentile(ms, [50, 99])
        return f"| {self.name} | {ms.size:,} | {p50:.3f} | {p99:.3f} | {ms.max():.3f} |"

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.array(self.seconds) * 1000, q))


async def timed(n: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
    return seconds


# --- in process --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_cache(
    redis_url: str | None, namespace: str | None, *, max_bytes: int = NODE_MAX_BYTES
) -> AsyncIterator[Cache]:
    """A cache as the node builds it, its Redis tier (if any) under `namespace`."""
    redis = None
    if redis_url is not None:
        store = CacheTierStore.from_url(redis_url, max_ttl=CACHE_MAX_TTL, namespace=namespace or "")
        redis = RedisTier(store)
    cache = Cache(max_bytes=max_bytes, redis=redis)
    async with trio.open_nursery() as nursery:
        await nursery.start(cache.run)
        yield cache
        nursery.cancel_scope.cancel()


# A memory tier that holds the course's row (the access check) but never the answer.
ROW_ONLY = 16 * 1024


async def in_process(
    db: Database, redis_url: str, course: AnalyticsCourse, args: argparse.Namespace
) -> tuple[list[Timings], int]:
    """The in-process reads (see the module's docstring), and the answer's size in bytes."""
    now = datetime.now(UTC)
    who = Principal(course.owner_id, Role.INSTRUCTOR)

    def reader(cache: Cache) -> Callable[[], Awaitable[object]]:
        analytics = Analytics(db, cache, clock=lambda: now)
        return lambda: analytics.course(who, course.course_id)

    cold: list[float] = []
    uncached: list[float] = []
    # Cold and uncached alternate, so a drift of the machine's speed falls on both alike.
    for _ in range(args.cold):
        namespace = f"bench-{uuid.uuid4().hex}:"
        async with running_cache(redis_url, namespace) as cache:
            cold += await timed(1, reader(cache))
            assert cache.statistics().computes == 2  # the course's row and the answer
        async with running_cache(None, None, max_bytes=ROW_ONLY) as cache:
            uncached += await timed(max(1, args.uncached // args.cold), reader(cache))
            assert cache.statistics().memory.entries == 1  # the course's row
    # The last cold read's answer is in Redis under `namespace`.
    async with running_cache(redis_url, namespace) as cache:
        read = reader(cache)
        await read()  # from Redis into the memory tier
        memory = await timed(args.reads, read)
        stats = cache.statistics()
        assert (stats.computes, stats.memory.hits) == (0, 2 * args.reads), stats
        size = len(await read())
    async with running_cache(redis_url, namespace, max_bytes=ROW_ONLY) as cache:
        redis_tier = await timed(args.reads, reader(cache))
        stats = cache.statistics()
        assert stats.redis is not None
        assert (stats.computes, stats.memory.hits, stats.redis.hits) == (
            0,
            args.reads - 1,
            args.reads + 1,
        ), stats
    return [
        Timings("cold, in process (both tiers empty)", cold),
        Timings("warm, memory tier, in process", memory),
        Timings("warm, Redis tier (memory tier empty), in process", redis_tier),
        Timings("uncached (computed on every read), in process", uncached),
    ], size


# --- a real node -------------------------------------------------------------------------------


@dataclass
class Http:
    node: NodeProcess
    bare_url: str
    bare_pid: int
    owner: dict[str, str]  # headers
    learner: dict[str, str]


@contextlib.asynccontextmanager
async def servers_up(
    dsn: str, redis_url: str, course: AnalyticsCourse, root: Path
) -> AsyncIterator[Http]:
    """The node (Redis configured) and the bare route, both pinned to the servers' core."""
    env = node_env(
        root / "node",
        LMS_DATABASE_URL=dsn,
        LMS_REDIS_URL=redis_url,
        LMS_SECRET_KEY=SECRET,
        LMS_LOG_LEVEL="warning",
        LMS_SEED_DEMO="false",
    )
    issuer = TokenIssuer(SECRET, access_ttl=4 * 3600, refresh_ttl=4 * 3600)
    async with contextlib.AsyncExitStack() as stack:
        node = await start_node(env, root / "node.log")
        stack.push_async_callback(stop_process, node.process)
        pin(node.process.pid, NODE_CPU)
        bare_url, bare = await _start_bare(root / "bare.log")
        stack.push_async_callback(stop_process, bare)
        yield Http(
            node,
            bare_url,
            bare.pid,
            owner=_bearer(issuer.access(course.owner_id, Role.INSTRUCTOR)),
            learner=_bearer(issuer.access(course.learners[0], Role.LEARNER)),
        )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _start_bare(log_path: Path) -> tuple[str, trio.Process]:
    argv = [sys.executable, "-m", "tests.bench.json_bare"]
    url, process = await start_peer(argv, log_path, "the bare route")
    pin(process.pid, NODE_CPU)
    return url, process


async def over_http(
    http: Http, course: AnalyticsCourse, args: argparse.Namespace
) -> tuple[list[Timings], int]:
    """Cold (after an edit that invalidates the course) and warm GETs of the course's
    analytics from one client; and the answer's size on the wire."""
    path = f"/api/v1/dashboard/analytics/course/{course.course_id}"
    cold: list[float] = []
    async with httpx.AsyncClient(base_url=http.node.url, timeout=60) as client:

        async def get() -> httpx.Response:
            response = await client.get(path, headers=http.owner)
            assert response.status_code == 200, response.text
            return response

        for i in range(args.cold):
            edited = await client.patch(
                f"/api/v1/courses/{course.course_id}",
                json={"description": f"edit {i}"},
                headers=http.owner,
            )
            assert edited.status_code == 200, edited.text
            cold += await timed(1, get)
        answer = await get()
        assert answer.json()["enrolled"] == len(course.learners)
        warm = await timed(args.http, get)
    return [
        Timings("cold, over HTTP (after a course edit)", cold),
        Timings("warm, over HTTP (one client, one GET after another)", warm),
    ], len(answer.content)


async def transactions_per_request(db: Database, http: Http, n: int) -> dict[str, float]:
    """PostgreSQL transactions per GET of each node route, over `n` GETs one after another,
    less what the node runs with no request at all (its pollers), counted over as long a
    window with none."""
    routes = {
        HEALTH: ("/health", {}),
        ME: ("/api/v1/users/me", http.learner),
        STATS: ("/api/v1/dashboard/stats", http.learner),
    }

    async def nothing() -> None:
        pass

    await trio.sleep(STATS_FLUSH)  # what ran before (the HTTP reads) is published first
    idle, idle_seconds = await counted(db, nothing)
    per_second = idle / idle_seconds
    per_request = {}
    async with httpx.AsyncClient(base_url=http.node.url, timeout=30) as client:
        for name, (path, headers) in routes.items():

            async def gets(path: str = path, headers: dict[str, str] = headers) -> None:
                for _ in range(n):
                    response = await client.get(path, headers=headers)
                    assert response.status_code == 200, (path, response.status_code)

            transactions, seconds = await counted(db, gets)
            per_request[name] = (transactions - per_second * seconds) / n
    return per_request


async def counted(db: Database, work: Callable[[], Awaitable[None]]) -> tuple[int, float]:
    """PostgreSQL's transactions in this database from before `work()` until every backend
    has published its counts, and how long that took (with the benchmark's own two reads)."""
    started = trio.current_time()
    before = await db.connection(_transactions)
    await work()
    await trio.sleep(STATS_FLUSH)
    after = await db.connection(_transactions)
    return after - before, trio.current_time() - started


async def _transactions(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database"
        " WHERE datname = current_database()"
    )


async def json_gets(
    http: Http, args: argparse.Namespace, script: Path
) -> tuple[dict[str, dict[str, float]], Load]:
    """The servers taking turns under wrk's load: each one's figures (streaming's `summary`)."""
    load = Load("JSON GETs", 64, 0, args.slice, "req/s", "req/CPU-s")
    node_pids = [http.node.process.pid]
    servers = [
        Server(BARE, f"{http.bare_url}/api/v1/users/me", lambda: [http.bare_pid]),
        Server(HEALTH, f"{http.node.url}/health", lambda: node_pids),
        Server(ME, f"{http.node.url}/api/v1/users/me", lambda: node_pids, http.learner),
        Server(STATS, f"{http.node.url}/api/v1/dashboard/stats", lambda: node_pids, http.learner),
    ]
    for server in servers:
        await run_wrk(server, load, 0, script, args.warmup)
    turns: dict[str, list[Turn]] = {server.name: [] for server in servers}
    for _ in range(args.turns):
        for server in servers:
            turn = await run_wrk(server, load, 0, script, args.slice)
            turns[server.name].append(turn)
            print(json.dumps({"server": server.name, **vars(turn)}), flush=True)
    return {name: summary(server_turns) for name, server_turns in turns.items()}, load


# --- the run -----------------------------------------------------------------------------------


async def bench(
    dsn: str, redis_url: str, course: AnalyticsCourse, root: Path, args: argparse.Namespace
) -> None:
    script = root / "wrk.lua"
    script.write_text(WRK_SCRIPT)
    async with open_bridge(), core_speed() as probe:
        db = await Database.connect(dsn, min_size=1, max_size=4)
        try:
            settle_after_startup()  # the node's collector settings
            pin(os.getpid(), NODE_CPU)
            reads, size = await in_process(db, redis_url, course, args)
            pin(os.getpid(), LOAD_CPUS)
            async with servers_up(dsn, redis_url, course, root) as http:
                http_reads, wire_size = await over_http(http, course, args)
                per_request = await transactions_per_request(db, http, args.probe)
                figures, load = await json_gets(http, args, script)
        finally:
            await db.close()
    print_tables(course, reads, http_reads, size, wire_size, figures, per_request, load, args)
    print(f"core probe {probe.median_us:.0f} us (tests/bench/core_speed.py)")


def print_tables(
    course: AnalyticsCourse,
    reads: list[Timings],
    http_reads: list[Timings],
    size: int,
    wire_size: int,
    figures: dict[str, dict[str, float]],
    per_request: dict[str, float],
    load: Load,
    args: argparse.Namespace,
) -> None:
    cold, memory, redis_tier, uncached = reads
    print(
        f"\ndashboard, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs (servers and the in-process reads on CPU "
        f"{','.join(map(str, sorted(NODE_CPU)))}, PostgreSQL, Redis and clients on "
        f"{','.join(map(str, sorted(LOAD_CPUS)))})"
    )
    print(
        f"\ncourse analytics: {len(course.learners):,} learners enrolled, "
        f"{len(course.videos)} videos ({sum(course.durations) / 3600:.1f} h), "
        f"{course.progress_rows:,} progress rows with {course.bounds:,} played bounds, "
        f"{course.activity_rows:,} activity rows over {args.days} days; the answer is "
        f"{size / 1000:,.0f} KB cached, {wire_size / 1000:,.0f} KB on the wire"
    )
    print("| read | n | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for timing in [cold, http_reads[0], memory, redis_tier, http_reads[1], uncached]:
        print(timing.row())

    print(
        f"\n{load.name}, wrk {load.connections} connections, {args.turns} turns of "
        f"{args.slice} s per server; PostgreSQL transactions per request over {args.probe} "
        "GETs one after another"
    )
    print(
        "| server | req/s | p50 ms | p99 ms | errors | CPU % | req/CPU-s | PG tx/request "
        "| vs bare | per CPU-s vs bare |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    bare = figures[BARE]
    for name, row in figures.items():
        transactions = per_request.get(name)
        cells = [f"{row[c]:,.1f}" for c in ("req/s", "p50 ms", "p99 ms", "errors", "CPU %")]
        cells.append(f"{row['req/CPU-s']:,.0f}")
        cells.append("-" if transactions is None else f"{transactions:.2f}")
        cells.append(f"{row['req/s'] / bare['req/s']:.2f}x")
        cells.append(f"{row['req/CPU-s'] / bare['req/CPU-s']:.2f}x")
        print(f"| {name} | {' | '.join(cells)} |")

    cold_p50 = cold.percentile(50)
    targets = [
        (
            f"course analytics cold <= {COLD_TARGET_MS:.0f} ms in process "
            f"(median {cold_p50:.0f} ms, max {max(cold.seconds) * 1000:.0f} ms)",
            cold_p50 <= COLD_TARGET_MS,
        ),
    ]
    for tier in (memory, redis_tier):
        p99 = tier.percentile(99)
        targets.append(
            (f"{tier.name}: p99 <= {WARM_TARGET_MS:g} ms ({p99:.3f} ms)", p99 <= WARM_TARGET_MS)
        )
    targets.append(judged(figures, ME, BARE, load, GET_RATIO_TARGET))
    print("\ntargets:")
    for target, met in targets:
        print(f"  {'met   ' if met else 'MISSED'}  {target}")


async def seed(dsn: str, args: argparse.Namespace) -> AnalyticsCourse:
    conn = await asyncpg.connect(dsn)
    try:
        return await seed_analytics_course(
            conn, learners=args.learners, videos=args.videos, days=args.days
        )
    finally:
        await conn.close()


QUICK = {"cold": 3, "reads": 300, "uncached": 6, "http": 50, "probe": 100}
QUICK |= {"slice": 2, "turns": 1, "warmup": 1}


def main() -> None:
    parser = wrk_parser(__doc__.splitlines()[0], slice_s=5, turns=3, warmup=2)
    parser.add_argument("--learners", type=int, default=5000)
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--cold", type=int, default=9, help="cold reads, in process and HTTP")
    parser.add_argument("--reads", type=int, default=2000, help="warm reads per tier")
    parser.add_argument("--uncached", type=int, default=18, help="reads computed every time")
    parser.add_argument("--http", type=int, default=200, help="warm GETs over HTTP")
    parser.add_argument("--probe", type=int, default=500, help="GETs counting transactions")
    args = parse_wrk_args(parser, "dashboard", QUICK)

    with scratch_database("lms-bench-dashboard-", args.keep) as (root, dsn):
        redis_url = os.environ.get("LMS_TEST_REDIS_URL")
        redis = None
        try:
            if not redis_url:
                redis = start_redis(root)
                pin(redis.process.pid, LOAD_CPUS)
                redis_url = redis.url
            started = time.perf_counter()
            course = asyncio.run(seed(dsn, args))
            print(f"seeded in {time.perf_counter() - started:.1f} s", flush=True)
            trio.run(bench, dsn, redis_url, course, root, args)
        finally:
            if redis is not None:
                redis.stop()


if __name__ == "__main__":
    main()
