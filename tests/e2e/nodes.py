"""Real nodes and workers as child processes: `lms serve` and `lms worker` started the way an
operator starts them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

BANNER = b"listening on "
WORKER_BANNER = b" transcoding in "
SECRET = "e2e-secret-" + "y" * 40
# A node starts in about a second; a first embedded start runs initdb too. Generous, for CI.
START_DEADLINE = 60.0
STOP_DEADLINE = 30.0
CLI_DEADLINE = 60.0


# Every test client comes from 127.0.0.1, where production sees an address per client (or per
# NAT): the per-address limits are raised for test nodes, and the announcements of one
# instructor, which live tests and benchmarks send as a room's load. The other per-account
# limits keep their defaults (the tests of the limits set their own).
LOOPBACK_RATE_LIMITS = ",".join(
    f"{name}=20000/60"
    for name in (
        "login_per_ip",
        "register_per_ip",
        "refresh_per_ip",
        "upload_per_ip",
        "socket_per_ip",
        "announce_per_ip",
        "announce_per_user",
    )
)


def node_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a node: nothing inherited from LMS_* but what the test says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    env.update({"LMS_DATA_DIR": str(data_dir), "LMS_PORT": "0", "LMS_LOG_FORMAT": "json"})
    env["LMS_RATE_LIMITS"] = LOOPBACK_RATE_LIMITS
    env.update(overrides)
    return env


def database_node_env(tmp_path: Path, database_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a test's node (or nodes, sharing it all) on `database_url` with the
    test secret, the data in `tmp_path`/data (the test's logs and files stay beside it)."""
    return node_env(
        tmp_path / "data", LMS_DATABASE_URL=database_url, LMS_SECRET_KEY=SECRET, **overrides
    )


@dataclass
class NodeProcess:
    process: trio.Process
    url: str
    log_path: Path

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send `signum` and wait for the process to exit; return its exit code."""
        self.process.send_signal(signum)
        with trio.fail_after(STOP_DEADLINE):
            return await self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def start_node(
    env: Mapping[str, str], log_path: Path, *, launcher: Sequence[str] = ()
) -> NodeProcess:
    """Start `lms serve` and return once it printed the URL it listens on. `launcher`: what
    runs it, between the interpreter and ``-m lms.cli`` (a benchmark's probe)."""
    process, said = await start_cli("serve", env, log_path, ready=BANNER, launcher=launcher)
    url = said.split(BANNER, 1)[1].split(b"\n", 1)[0].decode().strip()
    return NodeProcess(process, url, log_path)


async def start_nodes(
    env: Mapping[str, str], log_dir: Path, names: Sequence[str] = ("a", "b")
) -> dict[str, NodeProcess]:
    """Start one `lms serve` per name at once, each with LMS_NODE_ID=name and its log in
    `log_dir`/NAME.log; the caller stops them. If one fails to start, the others are killed."""
    nodes: dict[str, NodeProcess] = {}
    try:
        async with trio.open_nursery() as nursery:

            async def start(name: str) -> None:
                nodes[name] = await start_node(env | {"LMS_NODE_ID": name}, log_dir / f"{name}.log")

            for name in names:
                nursery.start_soon(start, name)
    except BaseException:
        for node in nodes.values():
            node.process.kill()
        raise
    return nodes


async def start_worker(env: Mapping[str, str], log_path: Path) -> trio.Process:
    """Start `lms worker` and return once it says it is transcoding."""
    process, _ = await start_cli("worker", env, log_path, ready=WORKER_BANNER)
    return process


async def start_cli(
    command: str,
    env: Mapping[str, str],
    log_path: Path,
    *,
    ready: bytes,
    cwd: Path | None = None,
    launcher: Sequence[str] = (),
) -> tuple[trio.Process, bytes]:
    """Start `lms COMMAND` (stderr to `log_path`) and return once a whole line of its stdout
    holds `ready`: the process, its stdout still open, and what it printed up to that line."""
    with log_path.open("wb") as log:
        process = await trio.lowlevel.open_process(
            [sys.executable, *launcher, "-m", "lms.cli", command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    assert process.stdout is not None
    try:
        with trio.fail_after(START_DEADLINE):
            said = await _read_through(process.stdout, ready)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    if said is None:
        await process.wait()
        log_text = await trio.Path(log_path).read_text(errors="replace")
        raise AssertionError(f"lms {command} exited before it was ready:\n{log_text}")
    return process, said


async def _read_through(stdout: trio.abc.ReceiveStream, ready: bytes) -> bytes | None:
    """What `stdout` says up to the end of the line holding `ready`, or None if it closed first."""
    said = b""
    while ready not in said or b"\n" not in said.split(ready, 1)[1]:
        chunk = await stdout.receive_some()
        if not chunk:
            return None
        said += chunk
    return said


def log_events(log: str) -> list[dict[str, Any]]:
    """The log events in what an `lms` process wrote to stderr (`node_env` asks for JSON)."""
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


async def output_lines(stream: trio.abc.ReceiveStream | None) -> AsyncIterator[str]:
    """The lines a child process writes to `stream`, stripped, until it closes it."""
    assert stream is not None
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = await stream.receive_some()
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield line.decode().strip()


async def run_cli(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(CLI_DEADLINE):
        return await trio.run_process(
            [sys.executable, "-m", "lms.cli", *args],
            env=dict(env),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
