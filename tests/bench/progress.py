"""Group commit of progress, measured beside one transaction per update in the same run.

(a) The writer alone, in process, through the same bridge and pool (10 connections, the node's
    default): P players each send heartbeats one after another for S seconds, either straight
    to the store in a transaction each (`lms.progress.direct.DirectWrites`, the naive path) or
    through a `ProgressWriter`. Both run the same store function with the same checks.
(b) End to end: a real node (`lms serve` in a child process) per path, selected with
    `LMS_PROGRESS_WRITES=direct|group`, and P simulated players posting heartbeats to
    `POST /api/v1/progress`.
(c) WebSocket heartbeats: a hook, see `PLAYERS` below.

Prints acknowledged updates/s, latency p50/p99, transactions per update (from
`pg_stat_database.xact_commit`, read once the workload's connections are closed; asyncpg's reset
query when a connection goes back to the pool counts as one), CPU per update of the serving
process (in (a) the bench process itself, writer and players; in (b) the node) and, for (b),
progress rows written per second (`pg_stat_user_tables`). Players run closed-loop (each sends
its next heartbeat when the last is answered), so latency is players / throughput.

    python -m tests.bench.progress [--players 200] [--seconds 5] [--part all|writer|http]

PostgreSQL is durable, as in production (fsync and synchronous_commit on: the cost group commit
shares out): a cluster started in a scratch directory on disk (not tmpfs), or the server named by
LMS_BENCH_DATABASE_URL (its databases `lms_bench_*` are dropped and re-created).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from lms.progress.direct import DirectWrites
from lms.store import bridge
from lms.store import progress as progress_store
from lms.store.database import Database
from lms.store.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresConfig
from lms.store.migrate import migrate
from proto.api import Role
from proto.events import Event
from proto.progress import ProgressUpdate, ProgressWrite
from tests.actors.test_progress_writer import DURATION, Seeded, seed
from tests.e2e.nodes import SECRET, NodeProcess, node_env, start_node

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

    def row(self, baseline: Run | None) -> str:
        p50, p99 = np.percentile(np.array(self.latencies) * 1000, [50, 99])
        n = len(self.latencies)
        cells = [
            self.name,
            f"{self.rate:,.0f}",
            f"{p50:.1f} / {p99:.1f}",
            f"{self.transactions / n:.4f}",
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
) -> tuple[list[float], float]:
    """Every learner sends heartbeats, `beat(step, user, video)`, one after another, for
    `seconds` (or `steps` each); return the latencies of those answered, and the time taken."""
    latencies: list[float] = []

    async def loop(index: int, user: int) -> None:
        video = course.videos[index % len(course.videos)]
        for step in range(1_000_000 if steps is None else steps):
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


async def committed(dsn: str) -> tuple[int, int]:
    """(xact_commit of the database, rows inserted + updated in `progress`), once every other
    connection to the database has gone (a backend's counters reach the statistics when it
    exits, or within a second or so while it lives)."""

    async def read() -> tuple[int, int]:
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
            xacts = await conn.fetchval(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
            rows = await conn.fetchval(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0)::bigint FROM pg_stat_user_tables "
                "WHERE relname = 'progress'"
            )
            return xacts, rows
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
            supervisor, partial(db.transaction, progress_store.apply_batch), ignore
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
        before, _ = await committed(dsn)
        db = await Database.connect(dsn, min_size=POOL, max_size=POOL)
        try:
            async with path(db) as record:

                async def player(step: int, user: int, video: int, record=record) -> None:
                    position, played = heartbeat(step)
                    update = ProgressUpdate(content_id=video, position=position, played=played)
                    await record(prepare(user, update, now=datetime.now(UTC)))

                cpu = time.process_time()
                latencies, elapsed = await players(course, seconds, player)
                cpu = time.process_time() - cpu
        finally:
            await db.close()
        after, _ = await committed(dsn)
        runs.append(Run(name, latencies, elapsed, after - before, cpu))
    return runs


# --- (b) over HTTP, a real node per path ----------------------------------------------------------


@contextlib.asynccontextmanager
async def http_player(url: str, token: str) -> AsyncIterator[Beat]:
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


# (c) HOOK for the WebSocket part: an async context manager shaped like `http_player` that
# opens the progress WebSocket (/api/v1/ws/progress/{course_id}), sends the auth frame, and
# yields a `beat` sending one progress frame and awaiting its acknowledgement. Added here, its
# rows print beside the HTTP ones, measured the same way.
PLAYERS: dict[str, Callable[[str, str], contextlib.AbstractAsyncContextManager[Beat]]] = {
    "HTTP POST": http_player
}


async def http_part(server: str, n_players: int, seconds: float, work_dir: Path) -> list[Run]:
    runs = []
    issuer = TokenIssuer(SECRET, access_ttl=3600, refresh_ttl=3600)
    for transport, player in PLAYERS.items():
        for mode, label in (("direct", "one transaction per update"), ("group", "ProgressWriter")):
            dsn = await fresh_database(server, f"lms_bench_http_{mode}")
            env = node_env(
                work_dir / mode,
                LMS_DATABASE_URL=dsn,
                LMS_SECRET_KEY=SECRET,
                LMS_PROGRESS_WRITES=mode,
                LMS_LOG_LEVEL="warning",
            )
            # First run: migrate, seed, and create every player's row, so that the measured run
            # updates rows as a learner's heartbeats do after the first. The node is then
            # restarted, so its connections' counters are in before the measurement starts.
            async with running_node(env, work_dir / f"{mode}-setup.log") as node:
                db = await Database.connect(dsn, min_size=1, max_size=1)
                try:
                    course = await db.transaction(seed, learners=n_players, videos=VIDEOS)
                finally:
                    await db.close()
                tokens = {user: issuer.access(user, Role.LEARNER) for user in course.learners}
                async with open_players(player, node.url, tokens) as beats:
                    await players(course, 0.0, beats, steps=1)
            before, rows_before = await committed(dsn)
            async with (
                running_node(env, work_dir / f"{mode}.log") as node,
                open_players(player, node.url, tokens) as beats,
            ):
                cpu = cpu_seconds(node.process.pid)
                latencies, elapsed = await players(course, seconds, beats)
                cpu = cpu_seconds(node.process.pid) - cpu
            after, rows_after = await committed(dsn)
            name = f"{transport}, {label}"
            rows = rows_after - rows_before
            runs.append(Run(name, latencies, elapsed, after - before, cpu, rows))
    return runs


@contextlib.asynccontextmanager
async def open_players(
    player: Callable[[str, str], contextlib.AbstractAsyncContextManager[Beat]],
    url: str,
    tokens: dict[int, str],
) -> AsyncIterator[Callable[[int, int, int], Awaitable[None]]]:
    """Every player connected; yields `beat(step, user, video)`."""
    async with contextlib.AsyncExitStack() as stack:
        beats = {
            user: await stack.enter_async_context(player(url, t)) for user, t in tokens.items()
        }

        async def beat(step: int, user: int, video: int) -> None:
            await beats[user](step, video)

        yield beat


@contextlib.asynccontextmanager
async def running_node(env: dict[str, str], log: Path) -> AsyncIterator[NodeProcess]:
    node = await start_node(env, log)
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


async def main_async(part: str, n_players: int, seconds: float) -> None:
    async with bridge.open_bridge(), durable_postgres() as server:
        version = await bridge.call(_server_version, server)
        print(
            f"progress writes; PostgreSQL {version}, durable (fsync, synchronous_commit on); "
            f"{platform.node()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
            f"{n_players} players, {seconds:g} s per path"
        )
        header = (
            "| path | updates/s | latency p50 / p99 (ms) | transactions/update "
            "| server CPU ms/update |"
        )
        if part in ("all", "writer"):
            runs = await writer_part(server, n_players, seconds)
            print(f"\n(a) in process, through the bridge, pool of {POOL}")
            print(header + " vs naive |")
            print("|---|---|---|---|---|---|")
            for run in runs:
                print(run.row(runs[0] if run is not runs[0] else None))
        if part in ("all", "http"):
            with tempfile.TemporaryDirectory(prefix="lms-bench-nodes-") as work_dir:
                runs = await http_part(server, n_players, seconds, Path(work_dir))
            print(
                f"\n(b) over HTTP: one node (`lms serve`), pool of {POOL}, keep-alive connections"
            )
            print(header + " progress rows/s | vs naive |")
            print("|---|---|---|---|---|---|---|")
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
    parser.add_argument("--part", choices=["all", "writer", "http"], default="all")
    args = parser.parse_args()
    trio.run(main_async, args.part, args.players, args.seconds)


if __name__ == "__main__":
    main()
