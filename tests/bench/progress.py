"""Group commit of progress, measured beside one transaction per update in the same run.

(a) The writer alone, in process, through the same bridge and pool (10 connections, the node's
    default): P players each send heartbeats one after another for S seconds, either straight
    to the store in a transaction each (`tests.bench.direct_writes.DirectWrites`, the naive
    path) or through a `ProgressWriter`. Both run the same store function with the same checks.
(b) End to end: a real node (`lms serve` in a child process) per path, the naive one started
    under tests/bench/direct_writes.py, and P simulated players posting heartbeats to
    `POST /api/v1/progress`.
(c) The same over the progress WebSocket (`/api/v1/ws/progress/{course_id}`): each player
    on its own socket sends `progress` frames and awaits each one's `ack`.

Each path runs closed loop (each player sends its next heartbeat when the last is answered:
the load the path carries, latency = players / throughput), and end to end also paced (d: each
player sends one every `--every` seconds: latency below saturation). Prints acknowledged
updates/s, latency p50/p99, write transactions per update (transaction ids PostgreSQL handed
out during the measured window; read-only transactions, such as a socket's enrolment check
when it connects, take none), CPU per update of the serving process (in (a) the bench process
itself, writer and players; end to end the node) and progress rows written per second
(`pg_stat_user_tables`), then the issue's targets, met or missed.

    python -m tests.bench.progress [--players 200] [--seconds 5] [--every 0.5]
                                   [--part all|writer|nodes]

PostgreSQL is durable, as in production (fsync and synchronous_commit on: the cost group commit
shares out): a cluster started in a scratch directory on disk (not tmpfs), or the server named by
LMS_BENCH_DATABASE_URL (its databases `lms_bench_*` are dropped and re-created).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import numpy as np
import trio

from actors.progress_writer import start_progress_writer
from actors.runtime import Supervisor
from lms.accounts.tokens import TokenIssuer
from lms.domain.progress import prepare
from lms.heap import settle_after_startup
from lms.store import bridge
from lms.store import progress as progress_store
from lms.store.database import Database
from lms.store.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresConfig
from lms.store.migrate import migrate
from proto.api import Role
from proto.events import Event
from proto.progress import ProgressUpdate, ProgressWrite
from tests.bench.direct_writes import LAUNCHER, DirectWrites
from tests.e2e.nodes import SECRET, NodeProcess, node_env, start_node
from tests.live_client import live_socket, progress_path
from tests.progress_setup import DURATION, Seeded, seed

POOL = 10  # the node's default LMS_DB_POOL_MAX
VIDEOS = 4
STEP = 5.0  # seconds of video per heartbeat

Record = Callable[[ProgressWrite], Awaitable[object]]
Beat = Callable[[int, int], Awaitable[None]]  # (step, video): send one heartbeat, await the answer


@dataclass
class Run:
    """What one path did in one measurement."""

    name: str
    latencies: list[float]  # seconds, one per acknowledged update
    seconds: float
    transactions: int
    cpu: float  # seconds of CPU the serving process used
    rows: int | None = None

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def per_update(self) -> float:
        return self.transactions / len(self.latencies)

    @property
    def p99(self) -> float:
        return float(np.percentile(self.latencies, 99))

    def row(self, baseline: Run | None) -> str:
        p50, p99 = np.percentile(np.array(self.latencies) * 1000, [50, 99])
        n = len(self.latencies)
        cells = [
            self.name,
            f"{self.rate:,.0f}",
            f"{p50:.1f} / {p99:.1f}",
            f"{self.per_update:.4f}",
            f"{self.cpu / n * 1000:.2f}",
        ]
        if self.rows is not None:
            cells.append(f"{self.rows / self.seconds:,.0f}")
        cells.append("1.00x" if baseline is None else f"{self.rate / baseline.rate:.2f}x")
        return "| " + " | ".join(cells) + " |"


def heartbeat(step: int) -> tuple[float, list[tuple[float, float]]]:
    """The position and played segment of a player's `step`-th heartbeat (wrapping at the end)."""
    start = (step * STEP) % (DURATION - STEP)
    return start + STEP, [(start, start + STEP)]


async def players(
    course: Seeded,
    seconds: float,
    beat: Callable[[int, int, int], Awaitable[None]],
    *,
    steps: int | None = None,
    every: float | None = None,
) -> tuple[list[float], float]:
    """Every learner sends heartbeats, `beat(step, user, video)`, for `seconds` (or `steps`
    each); return the latencies of those answered, and the time taken.

    Closed loop by default (each heartbeat goes when the last is answered: the load the path
    can carry); with `every`, each player sends one every `every` seconds, the players spread
    evenly over the interval (an offered load, to see latency below saturation)."""
    latencies: list[float] = []
    start = trio.current_time()

    async def loop(index: int, user: int) -> None:
        video = course.videos[index % len(course.videos)]
        for step in range(1_000_000 if steps is None else steps):
            if every is not None:
                await trio.sleep_until(start + every * (step + index / len(course.learners)))
            started = time.perf_counter()
            await beat(step, user, video)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with trio.move_on_after(seconds if steps is None else math.inf):
        async with trio.open_nursery() as nursery:
            for index, user in enumerate(course.learners):
                nursery.start_soon(loop, index, user)
    return latencies, time.perf_counter() - started


# --- counting transactions ------------------------------------------------------------------------


async def write_transactions(dsn: str) -> int:
    """A mark on the database's count of write transactions (each takes a transaction id; a
    read-only one, such as the enrolment check of a socket that connects, takes none). Read at
    any moment, unlike the statistics, so a measurement counts exactly its own window; the
    mark itself takes one id, which `written` subtracts."""

    async def read() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval("SELECT pg_current_xact_id()::text::bigint")
        finally:
            await conn.close()

    return await bridge.call(read)


async def written(dsn: str, mark: int) -> int:
    """Write transactions committed since `mark`."""
    return await write_transactions(dsn) - mark - 1


async def progress_rows(dsn: str) -> int:
    """Rows inserted or updated in `progress` so far, once every other connection to the
    database has gone (a backend's counters reach the statistics when it exits, or within a
    second or so while it lives)."""

    async def read() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            # Another process's state, with nothing to wait on but polling.
            while await conn.fetchval(  # noqa: ASYNC110
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ):
                await asyncio.sleep(0.05)
            # A backend leaves pg_stat_activity just before it writes out its counters.
            await asyncio.sleep(0.3)
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            return await conn.fetchval(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0)::bigint FROM pg_stat_user_tables "
                "WHERE relname = 'progress'"
            )
        finally:
            await conn.close()

    return await bridge.call(read)


# --- (a) the writer on its own ----------------------------------------------------------------


async def ignore(event: Event) -> None:
    pass


@contextlib.asynccontextmanager
async def direct_path(db: Database) -> AsyncIterator[Record]:
    yield DirectWrites(db, ignore).record


@contextlib.asynccontextmanager
async def writer_path(db: Database) -> AsyncIterator[Record]:
    async with trio.open_nursery() as nursery:
        supervisor = Supervisor("bench")
        await nursery.start(supervisor.run)
        writes = await start_progress_writer(
            supervisor,
            partial(db.kept_connection, progress_store.ProgressRows().apply_batch),
            ignore,
        )
        yield partial(writes.record, timeout=60.0)
        nursery.cancel_scope.cancel()


async def writer_part(server: str, n_players: int, seconds: float) -> list[Run]:
    runs = []
    for name, path in (
        ("one transaction per update (naive)", direct_path),
        ("ProgressWriter (group commit)", writer_path),
    ):
        dsn = await fresh_database(server, f"lms_bench_{path.__name__}")
        db = await Database.connect(dsn, min_size=POOL, max_size=POOL)
        try:
            await migrate(db)
            course = await db.transaction(seed, learners=n_players, videos=VIDEOS)
        finally:
            await db.close()
        db = await Database.connect(dsn, min_size=POOL, max_size=POOL)
        try:
            async with path(db) as record:

                async def player(step: int, user: int, video: int, record=record) -> None:
                    position, played = heartbeat(step)
                    update = ProgressUpdate(content_id=video, position=position, played=played)
                    await record(prepare(user, update, now=datetime.now(UTC)))

                settle_after_startup()  # the collector as the node runs it once serving
                mark = await write_transactions(dsn)
                cpu = time.process_time()
                latencies, elapsed = await players(course, seconds, player)
                cpu = time.process_time() - cpu
                transactions = await written(dsn, mark)
        finally:
            await db.close()
        runs.append(Run(name, latencies, elapsed, transactions, cpu))
    return runs


# --- (b, c) end to end, a real node per path ------------------------------------------------------


@contextlib.asynccontextmanager
async def http_player(url: str, token: str, course_id: int) -> AsyncIterator[Beat]:
    """A player on its own keep-alive connection (one client per player: an httpx client shared
    by hundreds of connections spends more CPU choosing one than the request costs)."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def beat(step: int, video: int) -> None:
            position, played = heartbeat(step)
            response = await client.post(
                "/api/v1/progress",
                json={"content_id": video, "position": position, "played": played},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code != 200:
                raise RuntimeError(f"heartbeat refused: {response.status_code} {response.text}")

        yield beat


@contextlib.asynccontextmanager
async def ws_player(url: str, token: str, course_id: int) -> AsyncIterator[Beat]:
    """A player on its own progress WebSocket: each heartbeat is a `progress` frame, answered
    by an `ack` once it is stored (or an `error`)."""
    async with live_socket(url, progress_path(course_id), token) as client:
        request_ids = itertools.count(1)

        async def beat(step: int, video: int) -> None:
            position, played = heartbeat(step)
            answer = await client.heartbeat(
                next(request_ids), content_id=video, position=position, played=played
            )
            if answer["type"] != "ack":
                raise RuntimeError(f"heartbeat refused: {answer}")

        yield beat


Player = Callable[[str, str, int], contextlib.AbstractAsyncContextManager[Beat]]
PLAYERS: dict[str, Player] = {"HTTP POST": http_player, "WebSocket": ws_player}


async def node_part(
    server: str, n_players: int, seconds: float, every: float, work_dir: Path
) -> tuple[list[Run], list[Run]]:
    """Each transport with each write mode, on a node of its own: the closed-loop runs (the
    load each path carries) and the paced ones (latency at an offered load)."""
    saturated, paced = [], []
    issuer = TokenIssuer(SECRET, access_ttl=3600, refresh_ttl=3600)
    for transport, player in PLAYERS.items():
        for mode, label, launcher in (
            ("direct", "one transaction per update", LAUNCHER),
            ("group", "ProgressWriter", []),
        ):
            name = f"{transport}, {label}"
            dsn = await fresh_database(server, f"lms_bench_{mode}")
            env = node_env(
                work_dir / mode,
                LMS_DATABASE_URL=dsn,
                LMS_SECRET_KEY=SECRET,
                LMS_LOG_LEVEL="warning",
            )
            # First run: migrate, seed, and create every player's row, so that the measured runs
            # update rows as a learner's heartbeats do after the first.
            async with running_node(env, launcher, work_dir / f"{mode}-setup.log") as node:
                db = await Database.connect(dsn, min_size=1, max_size=1)
                try:
                    course = await db.transaction(seed, learners=n_players, videos=VIDEOS)
                finally:
                    await db.close()
                tokens = {user: issuer.access(user, Role.LEARNER) for user in course.learners}
                async with open_players(player, node.url, course, tokens) as beats:
                    await players(course, 0.0, beats, steps=1)
            rows_before = await progress_rows(dsn)
            log = work_dir / f"{mode}.log"
            run = await measure_node(name, env, launcher, log, dsn, player, course, tokens, seconds)
            run.rows = await progress_rows(dsn) - rows_before
            saturated.append(run)
            run = await measure_node(
                name, env, launcher, log, dsn, player, course, tokens, seconds, every
            )
            paced.append(run)
    return saturated, paced


async def measure_node(
    name: str,
    env: dict[str, str],
    launcher: list[str],
    log: Path,
    dsn: str,
    player: Player,
    course: Seeded,
    tokens: dict[int, str],
    seconds: float,
    every: float | None = None,
) -> Run:
    """One measured run on a freshly started node, counted once every player is connected."""
    async with (
        running_node(env, launcher, log) as node,
        open_players(player, node.url, course, tokens) as beats,
    ):
        mark = await write_transactions(dsn)
        cpu = cpu_seconds(node.process.pid)
        latencies, elapsed = await players(course, seconds, beats, every=every)
        cpu = cpu_seconds(node.process.pid) - cpu
        transactions = await written(dsn, mark)
    return Run(name, latencies, elapsed, transactions, cpu)


@contextlib.asynccontextmanager
async def open_players(
    player: Player, url: str, course: Seeded, tokens: dict[int, str]
) -> AsyncIterator[Callable[[int, int, int], Awaitable[None]]]:
    """Every player connected; yields `beat(step, user, video)`."""
    async with contextlib.AsyncExitStack() as stack:
        beats = {
            user: await stack.enter_async_context(player(url, t, course.course_id))
            for user, t in tokens.items()
        }

        async def beat(step: int, user: int, video: int) -> None:
            await beats[user](step, video)

        yield beat


@contextlib.asynccontextmanager
async def running_node(
    env: dict[str, str], launcher: list[str], log: Path
) -> AsyncIterator[NodeProcess]:
    node = await start_node(env, log, launcher=launcher)
    try:
        yield node
    finally:
        with trio.CancelScope(shield=True):
            await node.stop(signal.SIGTERM)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the servers --------------------------------------------------------------------------------


async def fresh_database(server: str, name: str) -> str:
    async def recreate() -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    await bridge.call(recreate)
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def durable_postgres() -> AsyncIterator[str]:
    """The DSN of a durable PostgreSQL: LMS_BENCH_DATABASE_URL's server, or one of our own in a
    scratch directory on disk (tmpfs would make fsync free and the comparison meaningless)."""
    configured = os.environ.get("LMS_BENCH_DATABASE_URL")
    if configured:
        yield configured
        return
    with scratch_on_disk() as root:
        async with trio.open_nursery() as nursery:
            postgres = EmbeddedPostgres(EmbeddedPostgresConfig(root=root / "postgres"))
            yield await nursery.start(postgres.run)
            nursery.cancel_scope.cancel()


@contextlib.contextmanager
def scratch_on_disk() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="lms-bench-progress-", dir="/var/tmp"))
    try:
        root.chmod(0o711)  # PostgreSQL runs as its own user and must reach the cluster
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def main_async(part: str, n_players: int, seconds: float, every: float) -> None:
    async with bridge.open_bridge(), durable_postgres() as server:
        version = await bridge.call(_server_version, server)
        print(
            f"progress writes; PostgreSQL {version}, durable (fsync, synchronous_commit on); "
            f"{platform.node()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
            f"{n_players} players, {seconds:g} s per path"
        )
        targets: list[tuple[str, bool]] = []
        if part in ("all", "writer"):
            naive, group = await writer_part(server, n_players, seconds)
            print(f"\n(a) in process, through the bridge, pool of {POOL}")
            print_table([naive, group], rows=False)
            targets.append(
                ("writer alone >= 10x the naive writes/s", group.rate >= 10 * naive.rate)
            )
        if part in ("all", "nodes"):
            with tempfile.TemporaryDirectory(prefix="lms-bench-nodes-") as work_dir:
                saturated, paced = await node_part(
                    server, n_players, seconds, every, Path(work_dir)
                )
            print(
                f"\n(b, c) end to end, closed loop: one node (`lms serve`) per row, pool of {POOL};"
                " keep-alive HTTP connections, one WebSocket per player"
            )
            print_table(saturated, rows=True)
            print(
                f"\n(d) end to end, paced: each player sends a heartbeat every {every:g} s"
                f" (offered {n_players / every:,.0f}/s)"
            )
            print_table(paced, rows=False)
            http_naive, http_group, ws_naive, ws_group = saturated
            ws_paced = paced[3]
            targets += [
                ("HTTP: at least the naive updates/s", http_group.rate >= http_naive.rate),
                (
                    "HTTP: at least 10x fewer transactions per update",
                    http_group.per_update <= http_naive.per_update / 10,
                ),
                ("WebSocket: >= 1.5x the naive updates/s", ws_group.rate >= 1.5 * ws_naive.rate),
                ("WebSocket: <= 0.05 transactions per update", ws_group.per_update <= 0.05),
                (
                    f"WebSocket: p99 <= 50 ms at {n_players / every:,.0f} updates/s offered",
                    ws_paced.p99 <= 0.050,
                ),
            ]
        print("\ntargets:")
        for target, met in targets:
            print(f"  {'met   ' if met else 'MISSED'}  {target}")


def print_table(runs: list[Run], *, rows: bool) -> None:
    """Rows in pairs: each path's naive run, then its ProgressWriter run compared with it."""
    print(
        "| path | updates/s | latency p50 / p99 (ms) | write transactions/update "
        "| server CPU ms/update |" + (" progress rows/s |" if rows else "") + " vs naive |"
    )
    print("|---" * (7 if rows else 6) + "|")
    for index, run in enumerate(runs):
        print(run.row(runs[index - 1] if index % 2 else None))


async def _server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=200, help="concurrent players")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per path")
    parser.add_argument(
        "--every", type=float, default=0.5, help="seconds between a player's paced heartbeats"
    )
    parser.add_argument("--part", choices=["all", "writer", "nodes"], default="all")
    args = parser.parse_args()
    trio.run(main_async, args.part, args.players, args.seconds, args.every)


if __name__ == "__main__":
    main()
