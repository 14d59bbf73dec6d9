"""Soak: two nodes behind nginx under a mixed load for minutes; does anything leak or get lost?

    python -m tests.bench.soak [--minutes 10] [--short] [--learners 2000] [--players 200]
                               [--pollers 20] [--courses 5] [--interval 5] [--range-interval 2]
                               [--poll-interval 5] [--reset-interval 4] [--report 30] [--keep DIR]

Two real nodes (`lms serve`, LMS_TRANSCODE_WORKERS=1 each) share one PostgreSQL (a throwaway
cluster, or LMS_TEST_DATABASE_URL's server), one throwaway Redis and one media volume, behind
nginx with the repository's deploy/nginx/lms.conf (tests/nginx.py, plain HTTP); mail goes to a
local SMTP server (tests/smtp_server.py). Every client goes through nginx. The load, from this
one trio process (tests/bench/soak_clients.py):

- `--learners` WebSocket learners, in `--courses` course rooms, each sending a progress
  heartbeat every `--interval` s on its room's socket (users and enrolments inserted straight
  into PostgreSQL, tokens minted with the nodes' secret: tests/bench/live.py's `seed`);
- `--players` players (the first learners, also enrolled in a transcoded video's course): a
  manifest, then a 64 KiB Range GET of its signed rendition URL every `--range-interval` s,
  served by nginx from the media volume; a new manifest before the URL expires;
- one upload at a time (a 1 s clip, multipart), waited for until its video is ready;
- `--pollers` dashboards: half instructors polling their course's analytics, half learners
  their own dashboard, each every `--poll-interval` s;
- a password-reset request every `--reset-interval` s, followed to the SMTP server.

Every `--report` s it prints each kind's throughput, p99 latency and errors, each node's RSS
and open file descriptors (/proc/PID/status, /proc/PID/fd), and this process's own CPU: above
`SATURATED` of a core the generator, not the nodes, sets the pace (it says so; lower the
rates, not the client counts). At the end: a table of every figure in the first minute, the
middle and the last third of the run, and the last third over the first minute (the machine
is shared: a figure is judged against itself in the same run), and the verdict. PASS when

1. errors (any kind; heartbeats not acked within 30 s or by the end count) < 0.1 % of operations;
2. neither node's RSS nor its descriptors keep growing: the least-squares growth over the last
   third must be <= max(tolerance, half the middle third's) (the first third is warm-up);
   tolerance: 2 % of the RSS, max(10, 1 %) of the descriptors;
3. every acknowledged heartbeat is in PostgreSQL: each learner's stored played segments cover
   every interval it had acked, and its stored position is at least the furthest acked.

`--short`: 2 minutes, reports every 15 s (development).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import shutil
import signal
import sys
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import trio

from media.synthetic import write_clip
from tests.bench.live import Plan, cpu_seconds, rss_bytes, seed
from tests.bench.soak_clients import (
    Kind,
    Ledger,
    Mail,
    Run,
    Tally,
    learner,
    player,
    poller,
    resetter,
    uploader,
)
from tests.databases import admin_sql, with_database
from tests.e2e.admins import create_admin, signed_in
from tests.e2e.nodes import SECRET, NodeProcess, node_env, run_cli, start_node
from tests.nginx import Nginx, render_lms_conf, start_nginx, write_media_keys
from tests.polling import eventually
from tests.services import scratch_dir, start_postgres, start_redis
from tests.smtp_server import SmtpServer
from tests.sql import sql

MEDIA_KEYS = f"k1:{'s' * 48}"
MIB = 1024 * 1024
SATURATED = 0.85  # of one core: the generator is one trio thread
ERROR_BUDGET = 0.001
RSS_TOLERANCE = 0.02
FD_TOLERANCE = (10, 0.01)
DRAIN = 15.0  # seconds the learners wait for their last acks
MAIL_GRACE = 120.0
STOP_GRACE = 30.0
LATENCY_KINDS = ("heartbeat", "range GET", "dashboard", "manifest", "upload", "mail")


@dataclass
class Window:
    start: float  # seconds since the load started
    end: float
    kinds: dict[str, Kind]
    cpu: dict[str, float]  # cores used: this generator, each node, the whole machine

    @property
    def generator_cpu(self) -> float:
        return self.cpu["generator"]


@dataclass
class Sample:
    at: float  # seconds since the load started
    rss: list[int]  # per node
    fds: list[int]


@dataclass
class Cluster:
    nodes: list[NodeProcess]
    nginx: Nginx
    plan: Plan
    video_id: int
    upload_course: int
    admin_auth: dict[str, str]
    emails: list[str]


@dataclass
class Record:
    windows: list[Window] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


# --- the cluster --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def cluster_up(
    dsn: str, redis_url: str, smtp: SmtpServer, root: Path, args: argparse.Namespace
) -> AsyncIterator[Cluster]:
    media = root / "media"
    env = node_env(
        root / "data",
        LMS_DATABASE_URL=dsn,
        LMS_REDIS_URL=redis_url,
        LMS_SECRET_KEY=SECRET,
        LMS_MEDIA_DIR=str(media),
        LMS_MEDIA_KEYS=MEDIA_KEYS,
        LMS_TRANSCODE_WORKERS="1",
        LMS_LOG_LEVEL="warning",
        LMS_SEED_DEMO="false",
        # The uploading admin signs in once; the run outlasts the default 15 minutes.
        LMS_ACCESS_TOKEN_TTL="7200",
        LMS_SMTP_URL=smtp.url,
        # Every request comes from 127.0.0.1 (nginx): the per-client limit would stop the
        # mail flow after 30; each address is asked once, under its own limit.
        LMS_RESET_LIMIT_PER_IP="1000000/3600",
        # Likewise the sockets' and uploads' limits per client address (and uploads per
        # account: one instructor uploads all the run long). What they guard is not soaked.
        LMS_RATE_LIMITS="socket_per_ip=1000000/60,upload_per_ip=1000000/3600,"
        "upload_per_user=1000000/3600",
    )
    migrated = await run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr.decode()
    await create_admin(env)
    room = -(-args.learners // args.courses)
    plan = await trio.to_thread.run_sync(asyncio.run, seed(dsn, args.learners, room, args.courses))
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for name in ("a", "b"):
            node_dir = root / name
            node_dir.mkdir()
            node_env_of = env | {"LMS_NODE_ID": name, "LMS_DATA_DIR": str(node_dir)}
            probe = []
            if args.heap_probe or args.heap_trace:
                probe = ["-m", "tests.bench.heap_probe", str(node_dir)]
                probe += ["--trace"] if args.heap_trace else []
            node = await start_node(node_env_of, node_dir / "node.log", launcher=probe)
            stack.push_async_callback(_stop_node, node)
            nodes.append(node)
        conf_dir = root / "nginx"
        conf_dir.mkdir()
        keys_file = conf_dir / "media_keys.conf"
        await write_media_keys(MEDIA_KEYS, keys_file)
        upstreams = [urlsplit(node.url).netloc for node in nodes]
        nginx = await start_nginx(
            conf_dir,
            lambda port: render_lms_conf(
                port=port, upstreams=upstreams, media_root=media, keys_file=keys_file
            ),
            access_log=False,
            # Each proxied WebSocket takes two connections.
            worker_connections=2 * args.learners + 4 * args.players + 1024,
        )
        stack.push_async_callback(nginx.stop)
        clip = write_clip(root / "video.mp4", seconds=10.0)
        async with signed_in(nginx.url) as admin:
            admin.client.timeout = httpx.Timeout(60)
            video_id, _manifest = await admin.publish(clip)
            auth = admin.auth
        [[course]] = await sql(dsn, "SELECT course_id FROM contents WHERE id = $1", video_id)
        players = [row[0] for row in plan.learners[: args.players]]
        await sql(
            dsn,
            "INSERT INTO enrollments (course_id, user_id) SELECT $1, unnest($2::bigint[])",
            course,
            players,
        )
        rows = await sql(
            dsn,
            "SELECT email FROM users WHERE id = ANY($1::bigint[]) ORDER BY id",
            [row[0] for row in plan.learners],
        )
        yield Cluster(nodes, nginx, plan, video_id, course, auth, [row["email"] for row in rows])


async def _stop_node(node: NodeProcess) -> None:
    with trio.CancelScope(shield=True):
        node.process.terminate()
        with trio.move_on_after(STOP_GRACE):
            await node.process.wait()
        node.process.kill()
        await node.process.wait()


# --- measuring ----------------------------------------------------------------------------------


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy() -> float:
    """CPU-seconds the machine's cores have been busy (/proc/stat: all but idle and iowait)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU-seconds of a process and its descendants, the exited ones included (a parent's
    cutime and cstime hold what its reaped children used)."""
    total, stack = 0, [pid]
    while stack:
        process = stack.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            for task in Path(f"/proc/{process}/task").iterdir():
                stack.extend(int(child) for child in (task / "children").read_text().split())
    return total / os.sysconf("SC_CLK_TCK")


def queued_seconds(pid: int) -> float:
    """How long a process's threads have been ready to run and waiting for a core, in all
    (/proc/PID/task/TID/schedstat, ns): on a shared machine, the wait is in every latency."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


CPU_USERS = ("generator", "node a", "node b", "transcoders", "postgres", "nginx", "redis")
QUEUED = ("generator queued", "node a queued", "node b queued")


def cpu_clocks(cluster: Cluster, servers: dict[str, int]) -> dict[str, float]:
    """CPU-seconds so far: this process (all its threads), each node's own process, their
    transcode workers, the servers' process trees (`servers`: name -> pid), and the machine
    (everything on it, other users' work too)."""
    nodes = [node.process.pid for node in cluster.nodes]
    clocks = {
        "generator": own_cpu(),
        "generator queued": queued_seconds(os.getpid()),
        "machine": machine_busy(),
    }
    for name, pid in zip("ab", nodes, strict=True):
        clocks[f"node {name}"] = cpu_seconds(pid)
        clocks[f"node {name} queued"] = queued_seconds(pid)
    clocks["transcoders"] = sum(tree_cpu(pid) - cpu_seconds(pid) for pid in nodes)
    clocks["nginx"] = tree_cpu(cluster.nginx.process.pid)
    for name, pid in servers.items():
        clocks[name] = tree_cpu(pid)
    return clocks


def p99_ms(latencies: Sequence[float]) -> float:
    return float(np.percentile(latencies, 99)) * 1000 if latencies else float("nan")


async def sample_nodes(
    run: Run,
    mail: Mail,
    cluster: Cluster,
    servers: dict[str, int],
    record: Record,
    args: argparse.Namespace,
) -> None:
    """Every `args.sample` s the nodes' RSS and descriptors; every `args.report` s a window of
    the clients' figures, printed."""
    await run.go.wait()
    t0 = trio.current_time()
    pids = [node.process.pid for node in cluster.nodes]
    window_start, cpu_start = 0.0, cpu_clocks(cluster, servers)
    while True:
        await trio.sleep_until(t0 + (len(record.samples) + 1) * args.sample)
        now = trio.current_time() - t0
        record.samples.append(
            Sample(now, [rss_bytes(pid) for pid in pids], [open_fds(pid) for pid in pids])
        )
        mail.collect(run)
        if now - window_start >= args.report - 0.01:
            cpu = cpu_clocks(cluster, servers)
            seconds = now - window_start
            used = {name: (cpu[name] - cpu_start[name]) / seconds for name in cpu}
            window = Window(window_start, now, run.tally.window(), used)
            record.windows.append(window)
            print(window_line(window, record.samples[-1], run), flush=True)
            window_start, cpu_start = now, cpu


def window_line(window: Window, sample: Sample, run: Run) -> str:
    seconds = window.end - window.start
    parts = [f"[{window.end:5.0f} s]"]
    for name, kind in sorted(window.kinds.items()):
        text = f"{name} {kind.done / seconds:.1f}/s"
        if kind.latencies:
            text += f" p99 {p99_ms(kind.latencies):.0f} ms"
        if kind.errors:
            text += f" ERR {kind.errors}"
        parts.append(text)
    for name, rss, fds in zip("ab", sample.rss, sample.fds, strict=True):
        parts.append(f"node {name} {rss / MIB:.0f} MiB {fds} fds")
    if window.generator_cpu > SATURATED:
        parts.append("GENERATOR SATURATED")
    used = " ".join(f"{name} {window.cpu[name]:.2f}" for name in CPU_USERS if name in window.cpu)
    parts.append(f"cores: {used}, machine {window.cpu['machine']:.2f}")
    queued = " ".join(f"{name.removesuffix(' queued')} {window.cpu[name]:.2f}" for name in QUEUED)
    parts.append(f"waiting for a core (s/s): {queued}")
    parts.append(f"sockets {run.connected}")
    return " | ".join(parts)


# --- the run ------------------------------------------------------------------------------------


async def load(
    cluster: Cluster,
    smtp: SmtpServer,
    servers: dict[str, int],
    clip: bytes,
    args: argparse.Namespace,
) -> tuple[Run, Ledger, Mail, Record, float]:
    """Connect the learners, run every client for `args.minutes`, stop them; the connect time.
    `servers`: the processes whose CPU is reported beside the nodes' (name -> pid)."""
    run = Run(Tally(), expected=len(cluster.plan.learners))
    ledger, mail, record = Ledger(), Mail(smtp), Record()
    base = cluster.nginx.url
    split = urlsplit(base)
    assert split.hostname is not None
    assert split.port is not None
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as api,
        httpx.AsyncClient(base_url=base, timeout=60) as uploads,
        trio.open_nursery() as observers,
    ):
        observers.start_soon(sample_nodes, run, mail, cluster, servers, record, args)
        async with trio.open_nursery() as clients:
            t0 = time.monotonic()
            ws_base = base.replace("http://", "ws://", 1)
            for job in cluster.plan.learners:
                clients.start_soon(learner, run, ledger, ws_base, job, args.interval, DRAIN)
            with trio.fail_after(600):
                await run.all_settled.wait()
            connect_seconds = time.monotonic() - t0
            print(
                f"{run.connected} of {len(cluster.plan.learners)} learners connected in"
                f" {connect_seconds:.1f} s",
                flush=True,
            )
            for _user_id, token, _course, _content in cluster.plan.learners[: args.players]:
                clients.start_soon(
                    player, run, api, split.hostname, split.port, token, cluster.video_id,
                    args.range_interval,
                )  # fmt: skip
            for path, token in dashboards(cluster.plan, args.pollers):
                clients.start_soon(poller, run, api, path, token, args.poll_interval)
            if args.uploads:
                clients.start_soon(
                    uploader, run, uploads, cluster.admin_auth, cluster.upload_course, clip
                )
            clients.start_soon(
                resetter, run, api, mail, cluster.emails[args.players :], args.reset_interval
            )
            # The setup's objects (2,000 sockets' worth) out of the collector's walks: its
            # passes stay short, and so do the pauses every latency measured here would carry.
            gc.collect()
            gc.freeze()
            run.go.set()
            # Under --heap-probe, the nodes' heaps after the warm-up third and at the end.
            await trio.sleep(args.minutes * 20)
            if args.heap_probe or args.heap_trace:
                await heap_snapshots(cluster, 0)
            await trio.sleep(args.minutes * 40)
            if args.heap_probe or args.heap_trace:
                await heap_snapshots(cluster, 1)
            run.stop.set()
        observers.cancel_scope.cancel()
    with trio.move_on_after(MAIL_GRACE):
        while mail.undelivered():
            mail.collect(run)
            await trio.sleep(0.5)
    mail.collect(run)
    for _ in mail.undelivered():
        run.tally.fail("mail", f"not delivered within {MAIL_GRACE:g} s of the end")
    return run, ledger, mail, record, connect_seconds


def dashboards(plan: Plan, pollers: int) -> list[tuple[str, str]]:
    """Half instructors on their courses' analytics (the big course's owner among them),
    half learners on their own dashboard."""
    teachers = [(course, token) for _uid, token, course in plan.instructors]
    teachers.append((plan.big_course, plan.big_owner_token))
    chosen = []
    for i in range(pollers):
        if i % 2 == 0:
            course, token = teachers[(i // 2) % len(teachers)]
            chosen.append((f"/api/v1/dashboard/analytics/course/{course}", token))
        else:
            token = plan.learners[-(i // 2) - 1][1]
            chosen.append(("/api/v1/dashboard/stats", token))
    return chosen


async def heap_snapshots(cluster: Cluster, n: int) -> None:
    """Ask every node for its heap snapshot number `n` (tests/bench/heap_probe.py)."""
    for node in cluster.nodes:
        node.process.send_signal(signal.SIGUSR2)
    for node in cluster.nodes:
        await eventually(trio.Path(node.log_path.parent / f"{n}.trim").exists, bool, within=120)


def print_heap_growth(root: Path, top: int = 12, frames: int = 8) -> None:
    """What each node's heap held more at the end than after the warm-up: objects by type,
    and under `--heap-trace` bytes by allocating call stack (ours and the libraries')."""
    for name in "ab":
        first, last = (
            Counter(json.loads((root / name / f"{n}.types").read_text())) for n in (0, 1)
        )
        grown = Counter(last)
        grown.subtract(first)
        trims = [json.loads((root / name / f"{n}.trim").read_text()) for n in (0, 1)]
        print(
            f"\nnode {name}: RSS {trims[0][0] / 1024:.1f} -> {trims[1][0] / 1024:.1f} MiB,"
            f" after malloc_trim {trims[0][2] / 1024:.1f} -> {trims[1][2] / 1024:.1f} MiB"
        )
        print(f"node {name}: objects {sum(first.values()):,} -> {sum(last.values()):,}; grew:")
        for kind, count in grown.most_common(top):
            print(f"  {count:+,}  {kind} ({first[kind]:,} -> {last[kind]:,})")
    if not (root / "a" / "0.snapshot").exists():
        return
    ignored = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
    ]
    for name in "ab":
        before, after = (
            tracemalloc.Snapshot.load(str(root / name / f"{n}.snapshot")).filter_traces(ignored)
            for n in (0, 1)
        )
        grew = sum(s.size_diff for s in after.compare_to(before, "filename"))
        print(f"\nnode {name}: the traced heap grew {grew / MIB:+.2f} MiB; the most, by stack:")
        for stat in after.compare_to(before, "traceback")[: top // 2]:
            print(f"  {stat.size_diff / 1024:+,.0f} KiB in {stat.count_diff:+,} blocks")
            for line in stat.traceback.format(limit=frames, most_recent_first=True):
                print(f"    {line}")


# --- the verdict --------------------------------------------------------------------------------


async def missing_updates(dsn: str, plan: Plan, ledger: Ledger) -> tuple[int, list[str]]:
    """Acked intervals and positions checked against the progress table: (learners checked,
    what is missing)."""
    rows = await sql(
        dsn,
        "SELECT user_id, content_id, position, played FROM progress"
        " WHERE user_id = ANY($1::bigint[])",
        list(ledger.played),
    )
    stored = {(row["user_id"], row["content_id"]): row for row in rows}
    content_of = {uid: content for uid, _token, _course, content in plan.learners}
    missing: list[str] = []
    for user_id, acked in ledger.played.items():
        row = stored.get((user_id, content_of[user_id]))
        if row is None:
            missing.append(f"user {user_id}: no progress row, {len(acked)} acked intervals")
            continue
        flat = list(row["played"])
        union = list(zip(flat[0::2], flat[1::2], strict=True))
        for start, end in acked:
            if not any(a <= start + 1e-6 and end <= b + 1e-6 for a, b in union):
                missing.append(f"user {user_id}: acked [{start}, {end}] not in {union}")
        if row["position"] + 1e-6 < ledger.position[user_id]:
            missing.append(
                f"user {user_id}: position {row['position']} < acked {ledger.position[user_id]}"
            )
    return len(ledger.played), missing


async def print_undelivered(dsn: str, addresses: list[str]) -> None:
    """Where the mail that never arrived stands in the outbox: why it is missing."""
    rows = await sql(
        dsn,
        "SELECT to_address, template, state, attempts, now() - created_at AS age,"
        " due_at - now() AS due_in, sent_at - created_at AS sent_after, last_error"
        " FROM outbox WHERE to_address = ANY($1::text[]) ORDER BY id",
        addresses,
    )
    for row in rows:
        print(f"  {dict(row)}")


def growth(samples: list[Sample], value: str, node: int, span: tuple[float, float]) -> float:
    """The least-squares slope of a node's figure over `span` (s), times the span's length."""
    points = [(s.at, getattr(s, value)[node]) for s in samples if span[0] <= s.at < span[1]]
    if len(points) < 3:
        return float("nan")
    at, values = np.array(points, dtype=float).T
    slope = np.polyfit(at, values, 1)[0]
    return float(slope * (span[1] - span[0]))


def steady(record: Record, duration: float) -> list[tuple[str, bool]]:
    """Rule 2 for each node's RSS and descriptors."""
    third = duration / 3
    middle, last = (third, 2 * third), (2 * third, duration + 1)
    verdicts = []
    for node in range(2):
        for value, unit, scale in (("rss", "MiB", MIB), ("fds", "fds", 1)):
            late = [getattr(s, value)[node] for s in record.samples if s.at >= last[0]]
            level = float(np.mean(late)) if late else float("nan")
            if value == "rss":
                tolerance = RSS_TOLERANCE * level
            else:
                tolerance = max(FD_TOLERANCE[0], FD_TOLERANCE[1] * level)
            grew_middle = growth(record.samples, value, node, middle)
            grew_last = growth(record.samples, value, node, last)
            allowed = max(tolerance, grew_middle / 2)
            verdicts.append(
                (
                    f"node {'ab'[node]} {value}: last third {grew_last / scale:+.1f} {unit}"
                    f" <= max(tolerance {tolerance / scale:.1f}, half the middle third's"
                    f" {grew_middle / scale:+.1f}) {unit}",
                    grew_last <= allowed,
                )
            )
    return verdicts


def figures(record: Record, span: tuple[float, float]) -> dict[str, float]:
    """Every figure of the windows whose middle is in `span`, and the samples in it."""
    windows = [w for w in record.windows if span[0] <= (w.start + w.end) / 2 < span[1]]
    seconds = sum(w.end - w.start for w in windows) or float("nan")
    out: dict[str, float] = {}
    names = sorted({name for w in windows for name in w.kinds})
    for name in names:
        kinds = [w.kinds[name] for w in windows if name in w.kinds]
        out[f"{name} /s"] = sum(k.done for k in kinds) / seconds
        if name in LATENCY_KINDS:
            out[f"{name} p99 ms"] = p99_ms([lat for k in kinds for lat in k.latencies])
        out[f"{name} errors"] = float(sum(k.errors for k in kinds))
    samples = [s for s in record.samples if span[0] <= s.at < span[1]]
    for node in range(2):
        if samples:
            out[f"node {'ab'[node]} RSS MiB"] = max(s.rss[node] for s in samples) / MIB
            out[f"node {'ab'[node]} fds"] = float(max(s.fds[node] for s in samples))
    for name in (*CPU_USERS, "machine", *QUEUED):
        if windows and name in windows[0].cpu:
            cpu = sum(w.cpu[name] * (w.end - w.start) for w in windows) / seconds
            if name in QUEUED:
                out[f"{name} for a core, s/s"] = cpu
            else:
                out[f"{name} CPU % (of a core)"] = cpu * 100
    return out


def print_table(record: Record, duration: float) -> None:
    third = duration / 3
    spans = {
        "first minute": (0.0, min(60.0, duration)),
        "middle third": (third, 2 * third),
        "last third": (2 * third, duration + 1),
    }
    columns = {name: figures(record, span) for name, span in spans.items()}
    print("\n| figure | first minute | middle third | last third | last third / first minute |")
    print("|---|---|---|---|---|")
    keys = list(dict.fromkeys([*columns["first minute"], *columns["last third"]]))
    for key in keys:
        values = [columns[name].get(key, float("nan")) for name in spans]
        first, last = values[0], values[2]
        ratio = f"{last / first:.2f}x" if first and np.isfinite(last / first) else "-"
        cells = " | ".join(f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}" for v in values)
        print(f"| {key} | {cells} | {ratio} |")


async def soak(
    dsn: str,
    redis_url: str,
    smtp: SmtpServer,
    servers: dict[str, int],
    root: Path,
    args: argparse.Namespace,
) -> bool:
    clip_path = write_clip(root / "upload.mp4", seconds=1.0)
    clip = clip_path.read_bytes()
    async with cluster_up(dsn, redis_url, smtp, root, args) as cluster:
        print(
            f"soak: {args.minutes:g} min, {args.learners} learners in {args.courses} courses"
            f" (a heartbeat each every {args.interval:g} s), {args.players} players (a range"
            f" every {args.range_interval:g} s), {args.pollers} dashboards (every"
            f" {args.poll_interval:g} s), one upload at a time, a password reset every"
            f" {args.reset_interval:g} s; 2 nodes behind nginx, {os.cpu_count()} CPUs",
            flush=True,
        )
        run, ledger, mail, record, connect_seconds = await load(cluster, smtp, servers, clip, args)
        alive = [node.process.returncode is None for node in cluster.nodes]
    duration = args.minutes * 60
    print_table(record, duration)
    if args.heap_probe or args.heap_trace:
        print_heap_growth(root)

    users, missing = await missing_updates(dsn, cluster.plan, ledger)
    total_ops = sum(k.total_done + k.total_errors for k in run.tally.kinds.values())
    total_errors = sum(k.total_errors for k in run.tally.kinds.values())
    print(f"\nlearners connected: {run.connected} in {connect_seconds:.1f} s")
    print(f"operations {total_ops:,}, errors {total_errors:,}")
    for reason, count in run.tally.reasons.most_common():
        print(f"  {count:>7,}  {reason}")
    print(
        f"mail: {len(mail.requested)} password resets asked, {len(mail.delivered)} delivered"
        f" to the SMTP server"
    )
    await print_undelivered(dsn, mail.undelivered())
    print(
        f"progress: {ledger.acks:,} acked heartbeats of {users:,} learners checked against"
        f" PostgreSQL, {len(missing)} missing"
    )
    for line in missing[:10]:
        print(f"  {line}")
    saturated = [w for w in record.windows if w.generator_cpu > SATURATED]
    if saturated:
        print(
            f"the generator used > {SATURATED:.0%} of a core in {len(saturated)} of"
            f" {len(record.windows)} windows: it set the pace there; lower the rates"
        )
    rate = total_errors / max(total_ops, 1)
    verdicts = [
        (f"error rate {rate:.4%} < {ERROR_BUDGET:.1%}", rate < ERROR_BUDGET),
        *steady(record, duration),
        (f"no acknowledged update missing ({len(missing)})", not missing),
        ("both nodes alive at the end", all(alive)),
    ]
    print("\nrules (the first third is warm-up):")
    for text, ok in verdicts:
        print(f"  {'ok  ' if ok else 'FAIL'}  {text}")
    passed = all(ok for _, ok in verdicts)
    print(f"\n{'PASS' if passed else 'FAIL'}")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--short", action="store_true", help="2 minutes, reports every 15 s")
    parser.add_argument("--learners", type=int, default=2000)
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--pollers", type=int, default=20)
    parser.add_argument("--courses", type=int, default=5)
    parser.add_argument("--interval", type=float, default=5.0, help="s between heartbeats")
    parser.add_argument("--range-interval", type=float, default=2.0, help="s between ranges")
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--reset-interval", type=float, default=4.0)
    parser.add_argument(
        "--uploads",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one upload at a time (--no-uploads: none, to see what they cost)",
    )
    parser.add_argument("--report", type=float, default=30.0, help="s between reports")
    parser.add_argument("--sample", type=float, default=5.0, help="s between node samples")
    parser.add_argument("--keep", metavar="DIR", help="copy the nodes' and nginx's logs here")
    parser.add_argument(
        "--heap-probe",
        action="store_true",
        help="count the nodes' objects by type after the first third and at the end, and"
        " print what grew (tests/bench/heap_probe.py)",
    )
    parser.add_argument(
        "--heap-trace",
        action="store_true",
        help="--heap-probe, and tracemalloc's bytes by call stack (overloads the nodes)",
    )
    args = parser.parse_args()
    if args.short:
        args.minutes, args.report = 2.0, 15.0
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the nodes and nginx inherit it

    with scratch_dir("lms-bench-soak-") as root:
        server_dsn = os.environ.get("LMS_TEST_DATABASE_URL")
        pg = None
        if not server_dsn:
            pg = start_postgres(root)
            server_dsn = pg.dsn
        name = f"lms_soak_{uuid.uuid4().hex[:8]}"
        admin_sql(server_dsn, f"CREATE DATABASE {name}")
        redis = start_redis(root)
        smtp = SmtpServer()
        smtp.start()
        try:
            servers = {"redis": redis.process.pid}
            if pg is not None:
                servers["postgres"] = pg.process.pid
            passed = trio.run(
                soak, with_database(server_dsn, name), redis.url, smtp, servers, root, args
            )
        finally:
            if args.keep:
                for log in root.glob("**/*.log"):
                    if "postgres" not in log.parts:
                        target = Path(args.keep, log.relative_to(root))
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(log, target)
            smtp.stop()
            redis.stop()
            admin_sql(server_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            if pg is not None:
                pg.stop()
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
