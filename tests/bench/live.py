"""The live layer under load: one node, thousands of WebSocket learners, a few instructors.

    python -m tests.bench.live [--learners 5000] [--room 500] [--instructors 10] [--clients 4]
                               [--interval 5] [--slice 5] [--pairs 6] [--rounds 1]
                               [--skip-bare] [--profile DIR] [--server-acks]

Learners are split into courses ("rooms") of `--room`; each course has an instructor following
its room, and every learner is also enrolled in one big course. Clients run in `--clients`
processes per server (tests/bench/live_clients.py). Each learner sends a progress heartbeat
every `--interval` seconds over its room's socket; after a warm-up the benchmark measures
`--pairs` turns of each server, then the big course's instructor posts one announcement,
which reaches every learner as a notification on the socket it has open. Printed:

- heartbeats acknowledged per second, ack latency p50/p99 (sent -> ack received, which
  includes the group commit to PostgreSQL), and how many client processes are, on average,
  ready to run and waiting for the core they share with each other and PostgreSQL ("clients
  queued for a core"): their own waits are in what they measure. With `--server-acks`, also
  the ack latency at the server (the heartbeat's arrival in the kernel -> the ack written:
  tests/bench/ack_probe.py), which the ack target then judges;
- instructor-view lag p50/p99 (heartbeat sent -> the instructor's live view has it);
- announcement time-to-all (POST -> the last learner has it);
- WebSocket messages delivered per second (and frames: a batch carries several);
- node CPU per delivered frame (the targets' measure: the bare route sends one frame per
  message, the node sends a connection's queued frames as one batch) and per message, and RSS
  per connection (idle, right after connecting);
- the core probe (`tests/bench/core_speed.py`): how contended the servers' core was.

The baseline is the same client workload against a bare Quart-Trio route
(tests/bench/live_bare.py) that sends the same kinds of frames with no actors, no database, no
checks. The machine is shared, and its speed drifts by a third within minutes: measured a
minute apart, the same two servers' ratio ranged from 1.03x to 1.46x. So both servers run at
once, each with its own clients, and they take turns: time is cut into slices of `--slice`
seconds, the node's learners send in the even slices and the bare route's in the odd ones.
Each server's CPU is read over the same span, so both see the same machine; rates are per
second of the server's own turns, and its idle turns' costs (timers, keep-alives) count
against it. `--rounds N` repeats the whole and reports each measure's median and each
round's CPU ratio.

Both servers are pinned to CPU 0 and the clients to the other CPUs; each server's CPU time
is read from /proc for its own process only. PostgreSQL is not pinned. Uses
LMS_TEST_DATABASE_URL when set, else starts a throwaway PostgreSQL. `--keep` keeps the node's
log; `--profile DIR` samples the servers with py-spy during the measured span. The ack probe
costs both servers the same time per read, which lowers their CPU ratio (by ~0.01 at the
default load): measure CPU without `--server-acks`.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import trio

from lms.accounts.tokens import TokenIssuer
from proto.api import Role
from tests.bench.bare_server import raise_descriptor_limit
from tests.databases import admin_sql, with_database
from tests.e2e.nodes import SECRET, node_env, run_cli, start_node
from tests.services import scratch_dir, start_postgres

NODE_CPU = {0}
STOP_GRACE = 15.0


@dataclass(frozen=True)
class Plan:
    learners: list[list[Any]]  # [user_id, token, course_id, content_id]
    instructors: list[list[Any]]  # [user_id, token, course_id]
    big_course: int
    big_owner_token: str


# --- seeding ---------------------------------------------------------------------------------


async def seed(dsn: str, learners: int, room: int, instructors: int) -> Plan:
    """Users, courses (one per room plus the big one), videos with a duration, enrolments;
    straight into PostgreSQL, and tokens minted with the node's secret (no password hashing
    for thousands of users)."""
    conn = await asyncpg.connect(dsn)
    try:
        learner_ids = await _users(conn, "learner", learners)
        teacher_ids = await _users(conn, "instructor", instructors)
        rooms = (learners + room - 1) // room
        courses, contents = [], []
        for r in range(rooms + 1):
            owner = teacher_ids[r % len(teacher_ids)]
            course = await conn.fetchval(
                "INSERT INTO courses (owner_id, title) VALUES ($1, $2) RETURNING id",
                owner,
                "Big course" if r == rooms else f"Room {r}",
            )
            content = await conn.fetchval(
                "INSERT INTO contents (course_id, title, kind, duration_seconds)"
                " VALUES ($1, 'Lecture', 'video', 3600) RETURNING id",
                course,
            )
            courses.append(course)
            contents.append(content)
        big = courses[-1]
        pairs = [(courses[i // room], uid) for i, uid in enumerate(learner_ids)]
        pairs += [(big, uid) for uid in learner_ids]
        await conn.copy_records_to_table(
            "enrollments", records=pairs, columns=["course_id", "user_id"]
        )
    finally:
        await conn.close()
    issuer = TokenIssuer(SECRET, access_ttl=4 * 3600, refresh_ttl=4 * 3600)
    return Plan(
        learners=[
            [uid, issuer.access(uid, Role.LEARNER), courses[i // room], contents[i // room]]
            for i, uid in enumerate(learner_ids)
        ],
        instructors=[
            [
                teacher_ids[r % len(teacher_ids)],
                issuer.access(teacher_ids[r % len(teacher_ids)], Role.INSTRUCTOR),
                courses[r],
            ]
            for r in range(rooms)
        ],
        big_course=big,
        big_owner_token=issuer.access(teacher_ids[rooms % len(teacher_ids)], Role.INSTRUCTOR),
    )


async def _users(conn: asyncpg.Connection, role: str, n: int) -> list[int]:
    rows = await conn.fetch(
        "INSERT INTO users (email, name, password_hash, role)"
        " SELECT 'bench-' || $1 || '-' || i || '@bench.lms', initcap($1) || ' ' || i, 'x', $1"
        " FROM generate_series(1, $2) AS i RETURNING id",
        role,
        n,
    )
    return [row["id"] for row in rows]


# --- measuring a server ----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Clients:
    """The client processes, spoken to one JSON line at a time."""

    def __init__(self, processes: list[trio.Process]) -> None:
        self.processes = processes
        self._buffers = [b""] * len(processes)

    @classmethod
    async def start(cls, n: int) -> Clients:
        others = set(range(os.cpu_count() or 1)) - NODE_CPU or NODE_CPU
        processes = []
        for _ in range(n):
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "tests.bench.live_clients"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            os.sched_setaffinity(process.pid, others)
            processes.append(process)
        return cls(processes)

    def queued_seconds(self) -> float:
        """How long the processes have been ready to run and waiting for a core, in all:
        the kernel's run-queue time (/proc/PID/task/TID/schedstat, in ns), summed."""
        total = 0
        for process in self.processes:
            for task in Path(f"/proc/{process.pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[1])
        return total / 1e9

    async def tell(self, lines: list[str]) -> None:
        for process, line in zip(self.processes, lines, strict=True):
            assert process.stdin is not None
            await process.stdin.send_all(line.encode() + b"\n")

    async def tell_all(self, line: str) -> None:
        await self.tell([line] * len(self.processes))

    async def marks(self) -> dict[str, int]:
        """The processes' counters now, summed."""
        await self.tell_all("mark")
        marks = await self.answers()
        return {key: sum(m[key] for m in marks) for key in ("messages", "frames", "acks")}

    async def answers(self) -> list[dict[str, Any]]:
        return [await self._line(i) for i in range(len(self.processes))]

    async def _line(self, i: int) -> dict[str, Any]:
        stdout = self.processes[i].stdout
        assert stdout is not None
        while b"\n" not in self._buffers[i]:
            chunk = await stdout.receive_some()
            if not chunk:
                raise RuntimeError(f"client process {i} exited")
            self._buffers[i] += chunk
        line, self._buffers[i] = self._buffers[i].split(b"\n", 1)
        return json.loads(line)

    async def close(self) -> None:
        await self.tell_all("quit")
        for process in self.processes:
            with trio.move_on_after(10):
                await process.wait()
            process.kill()


@dataclass
class Server:
    """One server under test, and how to post its announcement."""

    url: str
    pid: int
    announce: Callable[[], Awaitable[None]]
    waits: Path | None  # where its ack probe writes (tests/bench/ack_probe.py), if probed

    async def answer_waits(self) -> list[list[float]]:
        """[arrived at, seconds] of every answer the server wrote so far, as its probe saw
        them (from the kernel's arrival of the client's bytes to the server's write); none
        when it runs without the probe."""
        if self.waits is None:
            return []
        with trio.open_signal_receiver(signal.SIGUSR1) as written, trio.fail_after(30):
            os.kill(self.pid, signal.SIGUSR2)
            async for _ in written:  # the probe's "written"
                if self.waits.exists():
                    break
        waits: list[list[float]] = json.loads(self.waits.read_text())
        self.waits.unlink()
        return waits


@dataclass
class Side:
    """A server and the client processes driving it."""

    server: Server
    clients: Clients
    connections: int = 0
    connect_errors: int = 0
    rss_per_conn: float = 0.0
    announced_at: float = 0.0
    answer_waits: list[float] = field(default_factory=list)
    clients_queued: float = 0.0


async def workload(
    servers: list[Server], plan: Plan, args: argparse.Namespace
) -> list[dict[str, float]]:
    """Drive every server with its own clients, the servers taking turns (see the module's
    docstring); one dict of measures per server."""
    sides: list[Side] = []
    try:
        for server in servers:
            sides.append(Side(server, await Clients.start(args.clients)))
            await _connect(sides[-1], plan, args)
        span = 2 * args.slice * args.pairs
        epoch = time.time() + args.warmup
        for turn, side in enumerate(sides):
            await side.clients.tell_all(f"go {epoch} {args.slice} {turn}")
        await trio.sleep(epoch - time.time())
        before = [await side.clients.marks() for side in sides]
        cpu0, t0 = [cpu_seconds(s.pid) for s in servers], time.time()
        queued0 = [side.clients.queued_seconds() for side in sides]
        async with profiled([s.pid for s in servers], span, args), core_speed() as probe:
            await trio.sleep(span)
        after = [await side.clients.marks() for side in sides]
        cpu1, t1 = [cpu_seconds(s.pid) for s in servers], time.time()
        for side, queued in zip(sides, queued0, strict=True):
            side.clients_queued = (side.clients.queued_seconds() - queued) / (t1 - t0)
        # The window the clients' acks are taken from: heartbeats sent in it.
        for side in sides:
            waits = await side.server.answer_waits()
            side.answer_waits = [w for at, w in waits if t0 <= at <= t1 - args.interval]

        # The announcements, one server at a time, its learners sending in every slice.
        for side in sides:
            for other in sides:
                await other.clients.tell_all(f"solo {'on' if other is side else 'off'}")
            side.announced_at = time.time()
            try:
                await side.server.announce()
            except httpx.HTTPError as exc:  # an overloaded server: report it, keep the rest
                print(f"announcement failed: {exc!r}", file=sys.stderr)
            await trio.sleep(max(3.0, args.interval))
        for side in sides:
            await side.clients.tell_all(f"report {t0} {t1 - args.interval}")
        reports = [await side.clients.answers() for side in sides]
    finally:
        for side in sides:
            await side.clients.close()
    # Each server is busy for half the span: rates are per second of its own turns.
    turns_seconds = (t1 - t0) / 2
    return [
        _measures(side, b, a, c1 - c0, turns_seconds, probe.median_us, r)
        for side, b, a, c0, c1, r in zip(sides, before, after, cpu0, cpu1, reports, strict=True)
    ]


async def _connect(side: Side, plan: Plan, args: argparse.Namespace) -> None:
    k = args.clients
    url = side.server.url.replace("http://", "ws://")
    jobs = [
        {
            "url": url,
            "learners": plan.learners[i::k],
            "instructors": plan.instructors[i::k],
            "interval": args.interval,
        }
        for i in range(k)
    ]
    rss_before = rss_bytes(side.server.pid)
    await side.clients.tell([json.dumps(job) for job in jobs])
    ready = await side.clients.answers()
    side.connections = sum(r["ready"] for r in ready)
    side.connect_errors = sum(r["errors"] for r in ready)
    side.rss_per_conn = (rss_bytes(side.server.pid) - rss_before) / max(side.connections, 1)


def _measures(
    side: Side,
    before: dict[str, int],
    after: dict[str, int],
    cpu: float,
    seconds: float,
    probe_us: float,
    reports: list[dict[str, Any]],
) -> dict[str, float]:
    codes: dict[str, int] = {}
    for report in reports:
        for code, count in report["error_codes"].items():
            codes[code] = codes.get(code, 0) + count
    if codes:
        print(f"error frames received: {codes}", file=sys.stderr)
    messages = after["messages"] - before["messages"]
    frames = after["frames"] - before["frames"]
    acks = np.array([a for r in reports for a in r["acks"]]) * 1000
    answers = np.array(side.answer_waits) * 1000
    lags = np.array([a for r in reports for a in r["lags"]]) * 1000
    arrivals = np.array([a for r in reports for a in r["announced"]]) - side.announced_at

    def percentile(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if values.size else float("nan")

    measures: dict[str, float] = {
        "connections": side.connections,
        "connect errors": side.connect_errors,
        "acked/s": (after["acks"] - before["acks"]) / seconds,
        "ack p50 ms": percentile(acks, 50),
        "ack p99 ms": percentile(acks, 99),
        "clients queued for a core": side.clients_queued,
        "lag p50 ms": percentile(lags, 50),
        "lag p99 ms": percentile(lags, 99),
        "announced to": float(arrivals.size),
        "announce p50 ms": percentile(arrivals, 50) * 1000,
        "announce all ms": float(arrivals.max() * 1000) if arrivals.size else float("nan"),
        "messages/s": messages / seconds,
        "frames/s": frames / seconds,
        "cpu/frame us": cpu / max(frames, 1) * 1e6,
        "cpu/message us": cpu / max(messages, 1) * 1e6,
        "cpu %": cpu / seconds * 100,
        "core probe us": probe_us,
        "rss/conn KiB": side.rss_per_conn / 1024,
        "errors": float(sum(r["errors"] for r in reports)),
        "closed": float(sum(r["closed"] for r in reports)),
    }
    if side.server.waits is not None:
        measures["server ack p50 ms"] = percentile(answers, 50)
        measures["server ack p99 ms"] = percentile(answers, 99)
    return measures


@dataclass
class Probe:
    median_us: float = float("nan")


@contextlib.asynccontextmanager
async def core_speed() -> AsyncIterator[Probe]:
    """Time tests/bench/core_speed.py's fixed work on the server's core for the block."""
    probe = Probe()
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.bench.core_speed"], stdout=subprocess.PIPE
    )
    os.sched_setaffinity(process.pid, NODE_CPU)
    try:
        yield probe
    finally:
        with trio.CancelScope(shield=True):
            process.terminate()
            assert process.stdout is not None
            output = b""
            while chunk := await process.stdout.receive_some():
                output += chunk
            await process.wait()
    probe.median_us = float(output)


@contextlib.asynccontextmanager
async def profiled(
    pids: list[int], seconds: float, args: argparse.Namespace
) -> AsyncIterator[None]:
    """With `--profile DIR`, sample each server with py-spy for the measured span, into
    DIR/<pid>.txt (py-spy's raw format: one stack and its count per line). py-spy reads the
    process's memory without stopping it, so the server's CPU is not charged."""
    spy_path = shutil.which("py-spy") if args.profile else None
    if spy_path is None:
        if args.profile:
            print("--profile needs py-spy (pip install py-spy): not profiling", file=sys.stderr)
        yield
        return
    await trio.Path(args.profile).mkdir(parents=True, exist_ok=True)
    spies = []
    for pid in pids:
        out = Path(args.profile) / f"{pid}.txt"
        command = [spy_path, "record", "-p", str(pid), "-r", "200", "-d", str(int(seconds))]
        command += ["-f", "raw", "-o", str(out), "--nonblocking"]
        spy = await trio.lowlevel.open_process(command, stdout=subprocess.DEVNULL)
        os.sched_setaffinity(spy.pid, set(range(os.cpu_count() or 1)) - NODE_CPU or NODE_CPU)
        spies.append(spy)
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            for spy in spies:
                await spy.wait()
    print(f"profiles of {pids} in {args.profile}", flush=True)


def _probed(waits: Path | None) -> list[str]:
    """What runs a server under tests/bench/ack_probe.py, writing to `waits` (if any)."""
    return [] if waits is None else ["-m", "tests.bench.ack_probe", str(waits)]


@contextlib.asynccontextmanager
async def node_server(
    dsn: str, plan: Plan, data_dir: Path, *, probe: bool
) -> AsyncIterator[Server]:
    env = node_env(
        data_dir,
        LMS_DATABASE_URL=dsn,
        LMS_SECRET_KEY=SECRET,
        LMS_LOG_LEVEL="warning",
        LMS_SEED_DEMO="false",
    )
    waits = data_dir / "node-waits.json" if probe else None
    node = await start_node(env, data_dir / "node.log", launcher=_probed(waits))
    os.sched_setaffinity(node.process.pid, NODE_CPU)
    try:
        async with httpx.AsyncClient(base_url=node.url, timeout=60) as api:

            async def announce() -> None:
                response = await api.post(
                    f"/api/v1/courses/{plan.big_course}/announcements",
                    json={"text": "Hello, everyone"},
                    headers={"Authorization": f"Bearer {plan.big_owner_token}"},
                )
                response.raise_for_status()

            yield Server(node.url, node.process.pid, announce, waits)
    finally:
        # An overloaded node may take long to drain what is queued; this run is over anyway.
        with trio.CancelScope(shield=True):
            node.process.terminate()
            with trio.move_on_after(STOP_GRACE):
                await node.process.wait()
            node.process.kill()
            await node.process.wait()


@contextlib.asynccontextmanager
async def bare_server(data_dir: Path, *, probe: bool) -> AsyncIterator[Server]:
    log = (data_dir / "bare.log").open("wb")
    waits = data_dir / "bare-waits.json" if probe else None
    process = await trio.lowlevel.open_process(
        [sys.executable, *_probed(waits), "-m", "tests.bench.live_bare"],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    os.sched_setaffinity(process.pid, NODE_CPU)
    try:
        assert process.stdout is not None
        banner = b""
        while b"\n" not in banner:
            banner += await process.stdout.receive_some()
        url = banner.decode().split("listening on ", 1)[1].strip()
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:

            async def announce() -> None:
                (await api.post("/announce")).raise_for_status()

            yield Server(url, process.pid, announce, waits)
    finally:
        with trio.CancelScope(shield=True):
            process.terminate()
            await process.wait()
        log.close()


async def paired_round(
    dsn: str, plan: Plan, args: argparse.Namespace, data_dir: Path
) -> list[dict[str, float]]:
    """One round: the node and (unless --skip-bare) the bare route, up together."""
    async with contextlib.AsyncExitStack() as stack:
        node = node_server(dsn, plan, data_dir, probe=args.server_acks)
        servers = [await stack.enter_async_context(node)]
        if not args.skip_bare:
            bare = bare_server(data_dir, probe=args.server_acks)
            servers.append(await stack.enter_async_context(bare))
        return await workload(servers, plan, args)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each measure's median over the rounds (the machine may be shared: a round of either
    side can be slowed by something else)."""
    return {key: float(np.median([run[key] for run in runs])) for key in runs[0]} if runs else {}


def print_table(
    ours: dict[str, float],
    bare: dict[str, float],
    ratios: list[float],
    args: argparse.Namespace,
) -> None:
    print(
        f"\nlive layer: {args.learners} learners in rooms of {args.room}, heartbeat every "
        f"{args.interval:g}s, {len(range(0, args.learners, args.room))} instructors, "
        f"{args.clients} client processes each, {args.pairs} turns of {args.slice:g}s each, "
        f"median of {args.rounds} round(s); {os.cpu_count()} CPUs "
        f"(server on CPU {min(NODE_CPU)})"
    )
    print("| measure | node (actors, PostgreSQL) | bare Quart-Trio route | ratio |")
    print("|---|---|---|---|")
    for key, value in ours.items():
        other = bare.get(key, float("nan"))
        ratio = value / other if other else float("nan")
        print(f"| {key} | {value:,.1f} | {other:,.1f} | {ratio:.2f}x |")
    if not bare:
        return
    ratio = float(np.median(ratios))
    rounds = ", ".join(f"{r:.2f}x" for r in ratios)
    print(f"\nCPU per delivered frame, node / bare, each round: {rounds} (median {ratio:.2f}x)")
    targets = [
        # The server's own figure when probed: the clients' includes their waits for a core.
        (
            f"ack p99 <= 100 ms ({'at the server' if args.server_acks else 'at the clients'})",
            ours["server ack p99 ms" if args.server_acks else "ack p99 ms"] <= 100,
        ),
        ("instructor lag p99 <= 1 s", ours["lag p99 ms"] <= 1000),
        (
            f"the announcement reaches all {args.learners:,} in <= 2 s",
            ours["announce all ms"] <= 2000,
        ),
        (
            "CPU per delivered frame <= 1.2x the bare route's",
            ratio <= 1.2,
        ),
        ("<= 50 KiB per idle connection", ours["rss/conn KiB"] <= 50),
    ]
    print("\ntargets:")
    for target, met in targets:
        print(f"  {'met   ' if met else 'MISSED'}  {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=5000)
    parser.add_argument("--room", type=int, default=500)
    parser.add_argument("--instructors", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument(
        "--slice", type=float, default=5.0, help="seconds of each server's turn (see above)"
    )
    parser.add_argument("--pairs", type=int, default=6, help="turns of each server measured")
    parser.add_argument("--rounds", type=int, default=1, help="run N times; report medians")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the node's data dir and log")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server in the window")
    parser.add_argument(
        "--server-acks", action="store_true", help="time acks inside the servers (ack_probe)"
    )
    args = parser.parse_args()
    periods = args.interval / (2 * args.slice)
    if periods == int(periods):
        # Every heartbeat of a learner would fall in the same server's turns: half the learners
        # would never send in theirs, and be pinged as silent instead.
        parser.error("--interval must not be a multiple of twice --slice")
    raise_descriptor_limit()

    tmp = tempfile.mkdtemp(prefix="lms-bench-live-")
    if args.keep:
        print(f"node data and logs in {tmp}", flush=True)
    else:
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    with scratch_dir("lms-bench-pg-") as pg_root:
        server_dsn = os.environ.get("LMS_TEST_DATABASE_URL")
        pg = None
        if not server_dsn:
            pg = start_postgres(pg_root)
            os.sched_setaffinity(
                pg.process.pid, set(range(os.cpu_count() or 1)) - NODE_CPU or NODE_CPU
            )
            server_dsn = pg.dsn
        name = f"lms_bench_{uuid.uuid4().hex[:8]}"
        admin_sql(server_dsn, f"CREATE DATABASE {name}")
        dsn = with_database(server_dsn, name)
        try:
            data_dir = Path(tmp)
            env = node_env(data_dir, LMS_DATABASE_URL=dsn, LMS_SECRET_KEY=SECRET)
            migrated = trio.run(lambda: run_cli("migrate", env=env))
            assert migrated.returncode == 0, migrated.stderr.decode()
            plan = asyncio.run(seed(dsn, args.learners, args.room, args.instructors))
            ours_runs: list[dict[str, float]] = []
            bare_runs: list[dict[str, float]] = []
            for _ in range(args.rounds):
                ours, *bare = trio.run(paired_round, dsn, plan, args, data_dir)
                ours_runs.append(ours)
                bare_runs.extend(bare)
                for measures in (ours, *bare):
                    print(json.dumps(measures), flush=True)
            ratios = [
                ours["cpu/frame us"] / bare["cpu/frame us"]
                for ours, bare in zip(ours_runs, bare_runs, strict=False)
            ]
            print_table(medians(ours_runs), medians(bare_runs), ratios, args)
        finally:
            admin_sql(server_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            if pg is not None:
                pg.stop()


if __name__ == "__main__":
    main()
