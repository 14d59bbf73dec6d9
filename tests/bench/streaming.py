"""The streaming edge under load: who sends a video's bytes, and at what cost.

    python -m tests.bench.streaming [--size-mb 100] [--slice 5] [--download-slice 10]
                                    [--turns 3] [--warmup 2] [--keep DIR]

One 100 MB file (a transcoded rendition whose MP4 is replaced by random bytes: what is measured
is sending bytes, not decoding them), served by five servers:
- the node's signed path (`/media/...`, the ASGI app before Quart: no database, no router);
- the node's Bearer path (`/api/v1/stream/video/{id}?quality=`: token, database read, Quart);
- nginx with the repository's deploy/nginx/lms.conf, signed paths (secure_link, the same URL);
- bare nginx on the same file (a `root`, sendfile, nothing else): the first baseline;
- Starlette's `FileResponse` on Hypercorn's trio worker (tests/bench/starlette_files.py), the
  node's server: the Python baseline.
Two loads, by `wrk` with a Lua script: 64 KiB ranges at random offsets (64 connections), and
whole-file downloads (8 connections). Printed per load: requests/s, MB/s, latency p50/p99 (of
completed requests), errors (non-2xx and socket errors), the server's CPU (% of its core, and
the work done per CPU-second) and RSS (the most seen after a turn, and how much it grew during
the server's own turns), and the ratios to bare nginx and Starlette: of throughput
(requests/s for ranges, MB/s for downloads), and of the same per CPU-second of the server
(what one saturated core gives).

Every server is up for the whole run and pinned to CPU 0, the load generator (and PostgreSQL)
to the others. They take turns, as in tests/bench/live.py: each turn one server gets `--slice`
seconds of load (`--download-slice` for downloads), one server after another, `--turns` times,
so a drift of the shared machine's speed falls on all of them alike; the core probe
(tests/bench/core_speed.py) says how contended CPU 0 was. A server under 80 % of its core was
waiting for wrk (on a shared machine, or nginx on downloads): a target against such a baseline
is judged per CPU-second, and says so. Last, the signed path alone gets `--turns` more turns of
ranges: the node's RSS after each must stay flat (bytes stream through fixed-size buffers).

Needs `wrk` and nginx (`make bench` installs both, and the `bench` extra: Starlette). Uses
LMS_TEST_DATABASE_URL when set, else starts a throwaway PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import trio

from lms.domain.media_urls import MediaFile, key_map, parse_keys, verify
from media.synthetic import write_clip
from tests.bench.bare_server import raise_descriptor_limit
from tests.bench.live import NODE_CPU, core_speed, cpu_seconds, rss_bytes
from tests.databases import admin_sql, with_database
from tests.e2e.admins import create_admin, signed_in
from tests.e2e.nodes import SECRET, node_env, run_cli, start_node
from tests.nginx import NginxMissing, nginx_binary, render_lms_conf, start_nginx, write_media_keys
from tests.services import scratch_dir, start_postgres

LOAD_CPUS = set(range(os.cpu_count() or 1)) - NODE_CPU or NODE_CPU
MEDIA_KEYS = f"k1:{'b' * 48}"
RANGE_BYTES = 64 * 1024
STOP_GRACE = 15.0
MIB = 1024 * 1024
SIGNED, BEARER, OURS, BARE, STARLETTE = (
    "node, signed path",
    "node, Bearer path",
    "nginx, lms.conf (signed)",
    "nginx, bare",
    "Starlette FileResponse",
)

# wrk's Lua: a random 64 KiB range per request (or none: the whole file), headers given with -H
# kept; `done` prints the run's figures as one JSON line.
WRK_SCRIPT = r"""
local size, chunk = 0, 0
local headers = {}
function setup(thread)
  thread:set("seed", math.random(1, 2^30))
end
function init(args)
  size, chunk = tonumber(args[1]), tonumber(args[2])
  math.randomseed(seed or os.time())
  for name, value in pairs(wrk.headers) do headers[name] = value end
end
function request()
  if chunk > 0 then
    local first = math.random(0, size - chunk)
    headers["Range"] = "bytes=" .. first .. "-" .. (first + chunk - 1)
  end
  return wrk.format(nil, nil, headers)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "bytes": %d, "seconds": %f, "p50_us": %d, "p99_us": %d, "errors": %d}\n',
    summary.requests, summary.bytes, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""

BARE_NGINX = """
server {{
    listen 127.0.0.1:{port};
    sendfile on;
    tcp_nopush off;
    root {root};
}}
"""


@dataclass(frozen=True)
class Load:
    name: str
    connections: int
    chunk: int  # bytes per range; 0: whole downloads
    seconds: int
    compare: str  # the throughput ratios are taken on
    capacity: str  # the same per CPU-second of the server


@dataclass
class Server:
    name: str
    url: str  # absolute, of the file
    pids: Callable[[], list[int]]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Turn:
    requests: int
    bytes: int
    seconds: float
    p50_us: float
    p99_us: float
    errors: int
    cpu: float
    rss: int  # after the turn
    rss_growth: int  # over the turn


# --- the servers -----------------------------------------------------------------------------


@dataclass
class Setup:
    servers: list[Server]
    node_pid: int
    file: Path  # the big file, on the media volume
    size: int


@contextlib.asynccontextmanager
async def servers_up(dsn: str, root: Path, args: argparse.Namespace) -> AsyncIterator[Setup]:
    """The node with a published video whose rendition is the big file, and the other servers
    on its media volume; all pinned to the servers' core."""
    media = root / "media"
    env = node_env(
        root / "data",
        LMS_DATABASE_URL=dsn,
        LMS_SECRET_KEY=SECRET,
        LMS_MEDIA_DIR=str(media),
        LMS_MEDIA_KEYS=MEDIA_KEYS,
        LMS_TRANSCODE_WORKERS="1",
        LMS_ACCESS_TOKEN_TTL="7200",
        LMS_LOG_LEVEL="warning",
        LMS_SEED_DEMO="false",
    )
    migrated = await run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr.decode()
    await create_admin(env)
    async with contextlib.AsyncExitStack() as stack:
        node = await start_node(env, root / "node.log")
        stack.push_async_callback(stop_process, node.process)
        os.sched_setaffinity(node.process.pid, NODE_CPU)
        clip = write_clip(root / "clip.mp4", seconds=1.0)
        async with signed_in(node.url) as admin:
            content_id, manifest = await admin.publish(clip)
            auth = admin.auth
        rendition = max(manifest["renditions"], key=lambda r: r["height"])
        signed_path = urlsplit(rendition["url"]).path
        opened = verify(signed_path, key_map(parse_keys(MEDIA_KEYS)), time.time())
        assert isinstance(opened, MediaFile), opened
        size = await trio.to_thread.run_sync(_replace_with_random, media / opened.path, args)

        keys_file = root / "nginx-keys.conf"
        await write_media_keys(MEDIA_KEYS, keys_file)
        upstream = urlsplit(node.url).netloc
        ours = await start_nginx(
            _fresh_dir(root / "nginx-ours"),
            lambda port: render_lms_conf(
                port=port, upstreams=[upstream], media_root=media, keys_file=keys_file
            ),
            access_log=False,
            cpus=NODE_CPU,
        )
        stack.push_async_callback(ours.stop)
        bare = await start_nginx(
            _fresh_dir(root / "nginx-bare"),
            lambda port: BARE_NGINX.format(port=port, root=media),
            access_log=False,
            cpus=NODE_CPU,
        )
        stack.push_async_callback(bare.stop)
        starlette_url, starlette = await _start_starlette(media, root / "starlette.log")
        stack.push_async_callback(stop_process, starlette)

        def node_pids() -> list[int]:
            return [node.process.pid]

        bearer = f"/api/v1/stream/video/{content_id}?quality={rendition['label']}"
        yield Setup(
            [
                Server("node, signed path", node.url + signed_path, node_pids),
                Server("node, Bearer path", node.url + bearer, node_pids, auth),
                Server("nginx, lms.conf (signed)", ours.url + signed_path, ours.pids),
                Server("nginx, bare", f"{bare.url}/{opened.path}", bare.pids),
                Server(
                    "Starlette FileResponse",
                    f"{starlette_url}/{opened.path}",
                    lambda: [starlette.pid],
                ),
            ],
            node.process.pid,
            media / opened.path,
            size,
        )


def _replace_with_random(path: Path, args: argparse.Namespace) -> int:
    """Put `--size-mb` of random bytes where the rendition was (readable by nginx's workers)."""
    size = args.size_mb * 1000 * 1000
    part = path.with_name(path.name + ".bench")
    with part.open("wb") as out:
        for _ in range(0, size, 4 * MIB):
            out.write(os.urandom(min(4 * MIB, size - out.tell())))
    part.chmod(0o644)
    os.replace(part, path)
    return size


def _fresh_dir(path: Path) -> Path:
    path.mkdir()
    return path


async def _start_starlette(root: Path, log_path: Path) -> tuple[str, trio.Process]:
    argv = [*_pinned(NODE_CPU), sys.executable, "-m", "tests.bench.starlette_files", str(root)]
    return await start_peer(argv, log_path, "Starlette peer")


async def start_peer(argv: list[str], log_path: Path, what: str) -> tuple[str, trio.Process]:
    """Start a baseline server that prints `listening on URL` first; return the URL."""
    with log_path.open("wb") as log:
        process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    banner = b""
    with trio.fail_after(30):
        while b"\n" not in banner:
            chunk = await process.stdout.receive_some()
            if not chunk:
                log_text = await trio.Path(log_path).read_text()
                raise RuntimeError(f"{what} exited:\n{log_text}")
            banner += chunk
    return banner.decode().split("listening on ", 1)[1].strip(), process


async def stop_process(process: trio.Process) -> None:
    """SIGTERM, SIGKILL after `STOP_GRACE`; shielded, as it runs on the way out."""
    with trio.CancelScope(shield=True):
        process.terminate()
        with trio.move_on_after(STOP_GRACE):
            await process.wait()
        process.kill()
        await process.wait()


def _cpu_list(cpus: set[int]) -> str:
    return ",".join(map(str, sorted(cpus)))


def _pinned(cpus: set[int]) -> list[str]:
    """What runs a command on `cpus` from its start (so its threads and children are too)."""
    return ["taskset", "-c", _cpu_list(cpus)]


async def check_servers(setup: Setup) -> None:
    """Every server sends the same bytes for the same range before any is measured."""
    with setup.file.open("rb") as file:
        expected = {first: os.pread(file.fileno(), RANGE_BYTES, first) for first in (0, 12_345)}
    async with httpx.AsyncClient(timeout=30) as client:
        for server in setup.servers:
            for first, body in expected.items():
                response = await client.get(
                    server.url,
                    headers={**server.headers, "Range": f"bytes={first}-{first + RANGE_BYTES - 1}"},
                )
                assert response.status_code == 206, (server.name, response.status_code)
                assert response.content == body, server.name


# --- measuring -------------------------------------------------------------------------------


async def run_wrk(server: Server, load: Load, size: int, script: Path, seconds: int) -> Turn:
    """One turn: `seconds` of `load` on `server`; its CPU and RSS read from /proc around it."""
    command = [*_pinned(LOAD_CPUS), "wrk", "-t1"]
    command += [f"-c{load.connections}", f"-d{seconds}s", "--timeout", "60s", "-s", str(script)]
    for name, value in server.headers.items():
        command += ["-H", f"{name}: {value}"]
    command += [server.url, "--", str(size), str(load.chunk)]
    cpu0 = sum(cpu_seconds(pid) for pid in server.pids())
    rss0 = sum(rss_bytes(pid) for pid in server.pids())
    result = await trio.run_process(command, capture_stdout=True, capture_stderr=True)
    cpu = sum(cpu_seconds(pid) for pid in server.pids()) - cpu0
    line = result.stdout.decode().strip().splitlines()[-1]
    figures = json.loads(line)
    rss = sum(rss_bytes(pid) for pid in server.pids())
    return Turn(cpu=cpu, rss=rss, rss_growth=rss - rss0, **figures)


async def measure(
    setup: Setup, loads: list[Load], args: argparse.Namespace, script: Path
) -> dict[str, dict[str, list[Turn]]]:
    """turns[load][server]: the servers taking turns, `args.turns` rounds per load."""
    turns: dict[str, dict[str, list[Turn]]] = {}
    for load in loads:
        for server in setup.servers:
            await run_wrk(server, load, setup.size, script, args.warmup)
        by_server: dict[str, list[Turn]] = {server.name: [] for server in setup.servers}
        for _ in range(args.turns):
            for server in setup.servers:
                turn = await run_wrk(server, load, setup.size, script, load.seconds)
                by_server[server.name].append(turn)
                print(json.dumps({"load": load.name, "server": server.name, **vars(turn)}))
        turns[load.name] = by_server
    return turns


async def soak(
    setup: Setup, load: Load, args: argparse.Namespace, script: Path
) -> tuple[int, list[Turn]]:
    """The node's RSS under its signed path's load alone, once everything else has run: the
    RSS before, and `args.turns` turns. (Between the Bearer path's turns, the Quart path's
    garbage moves the figure: the table's growth column shows it per path.)"""
    [signed] = [server for server in setup.servers if server.name == SIGNED]
    before = rss_bytes(setup.node_pid)
    return before, [
        await run_wrk(signed, load, setup.size, script, load.seconds) for _ in range(args.turns)
    ]


def summary(turns: list[Turn]) -> dict[str, float]:
    seconds = sum(t.seconds for t in turns)
    requests = sum(t.requests for t in turns)
    cpu = sum(t.cpu for t in turns)
    return {
        "req/s": requests / seconds,
        "MB/s": sum(t.bytes for t in turns) / seconds / 1e6,
        "p50 ms": statistics.median(t.p50_us for t in turns) / 1000,
        "p99 ms": statistics.median(t.p99_us for t in turns) / 1000,
        "errors": float(sum(t.errors for t in turns)),
        "CPU %": cpu / seconds * 100,
        "req/CPU-s": requests / cpu,
        "MB/CPU-s": sum(t.bytes for t in turns) / 1e6 / cpu,
        "RSS MiB": max(t.rss for t in turns) / MIB,
        "RSS growth MiB": sum(t.rss_growth for t in turns) / MIB,
    }


# Below this share of its core, a server was waiting for the load generator (which shares its
# core with PostgreSQL and whatever else runs): its throughput says how fast wrk was.
SATURATED_CPU = 80.0


def judged(
    figures: dict[str, dict[str, float]], ours: str, base: str, load: Load, at_least: float
) -> tuple[str, bool]:
    """`ours` against `base` on the load's throughput; on the work per CPU-second (what one
    saturated core would give) when `base` did not saturate its core."""
    if figures[base]["CPU %"] >= SATURATED_CPU:
        key, how = load.compare, "throughput"
    else:
        key = load.capacity
        how = f"per CPU-second: {base} at {figures[base]['CPU %']:.0f} % CPU, client-bound"
    ratio = figures[ours][key] / figures[base][key]
    return f"{load.name}: {ours} >= {at_least}x {base} ({ratio:.2f}x, {how})", ratio >= at_least


def print_tables(
    turns: dict[str, dict[str, list[Turn]]], loads: list[Load]
) -> list[tuple[str, bool]]:
    targets: list[tuple[str, bool]] = []
    for load in loads:
        figures = {name: summary(server_turns) for name, server_turns in turns[load.name].items()}
        print(
            f"\n{load.name}: {load.connections} connections, {len(turns[load.name][BARE])} turns"
            f" of {load.seconds} s per server; ratios on {load.compare}, and on {load.capacity}"
        )
        columns = ["req/s", "MB/s", "p50 ms", "p99 ms", "errors", "CPU %", load.capacity]
        columns += ["RSS MiB", "RSS growth MiB"]
        ratios = ["vs bare nginx", "vs Starlette", "per CPU-s vs bare nginx", "vs Starlette"]
        print(f"| server | {' | '.join(columns + ratios)} |")
        print("|---|" + "---|" * (len(columns) + len(ratios)))
        for name, row in figures.items():
            cells = [f"{row[c]:,.1f}" for c in columns]
            cells += [
                f"{row[key] / figures[base][key]:.2f}x"
                for key in (load.compare, load.capacity)
                for base in (BARE, STARLETTE)
            ]
            print(f"| {name} | {' | '.join(cells)} |")
        targets.append(judged(figures, OURS, BARE, load, 0.9))
        if load.chunk:
            targets.append(judged(figures, SIGNED, STARLETTE, load, 1.0))
    return targets


async def bench(dsn: str, root: Path, args: argparse.Namespace) -> None:
    loads = [
        Load("64 KiB random ranges", 64, RANGE_BYTES, args.slice, "req/s", "req/CPU-s"),
        Load(f"{args.size_mb} MB downloads", 8, 0, args.download_slice, "MB/s", "MB/CPU-s"),
    ]
    script = root / "wrk.lua"
    script.write_text(WRK_SCRIPT)
    async with servers_up(dsn, root, args) as setup:
        await check_servers(setup)
        async with core_speed() as probe:
            turns = await measure(setup, loads, args, script)
            rss_before, soaked = await soak(setup, loads[0], args, script)
    print(
        f"\nstreaming edge, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs (servers on CPU {_cpu_list(NODE_CPU)}, "
        f"wrk on {_cpu_list(LOAD_CPUS)}); core probe {probe.median_us:.0f} us "
        "(tests/bench/core_speed.py)"
    )
    targets = print_tables(turns, loads)
    growth = soaked[-1].rss - rss_before
    requests = sum(t.requests for t in soaked)
    print(
        f"\nnode RSS under the signed path's {loads[0].name} alone: {rss_before / MIB:.1f} MiB,"
        f" then {', '.join(f'{t.rss / MIB:.1f}' for t in soaked)} MiB after each of"
        f" {len(soaked)} turns ({requests:,} requests, {growth / MIB:+.1f} MiB)"
    )
    share = growth / rss_before
    targets.append((f"node RSS flat under load: <= +2 % ({share:+.1%})", share <= 0.02))
    print("\ntargets:")
    for target, met in targets:
        print(f"  {'met   ' if met else 'MISSED'}  {target}")


def missing_tools() -> list[str]:
    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk: apt-get install wrk (make bench does)")
    try:
        nginx_binary()
    except NginxMissing as exc:
        missing.append(str(exc))
    try:
        import starlette  # noqa: F401
    except ImportError:
        missing.append("Starlette: .venv/bin/pip install -e '.[bench]' (make bench does)")
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--slice", type=int, default=5, help="seconds of a turn, ranges")
    parser.add_argument("--download-slice", type=int, default=10, help="seconds of a download turn")
    parser.add_argument("--turns", type=int, default=3, help="turns of each server per load")
    parser.add_argument("--warmup", type=int, default=2, help="seconds per server before a load")
    parser.add_argument("--keep", metavar="DIR", help="copy the servers' logs into DIR")
    args = parser.parse_args()
    if missing := missing_tools():
        parser.exit(1, "the streaming benchmark needs:\n  " + "\n  ".join(missing) + "\n")
    raise_descriptor_limit()

    with scratch_dir("lms-bench-streaming-") as root:
        server_dsn = os.environ.get("LMS_TEST_DATABASE_URL")
        pg = None
        if not server_dsn:
            pg = start_postgres(root)
            os.sched_setaffinity(pg.process.pid, LOAD_CPUS)
            server_dsn = pg.dsn
        name = f"lms_bench_{uuid.uuid4().hex[:8]}"
        admin_sql(server_dsn, f"CREATE DATABASE {name}")
        try:
            trio.run(bench, with_database(server_dsn, name), root, args)
        finally:
            if args.keep:
                for log in root.glob("**/*.log"):
                    if "postgres" not in log.parts:
                        target = Path(args.keep, log.relative_to(root))
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(log, target)
            admin_sql(server_dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            if pg is not None:
                pg.stop()


if __name__ == "__main__":
    main()
