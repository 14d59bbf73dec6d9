"""Real nodes as child processes: `lms serve` started the way an operator starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

BANNER = b"listening on "
SECRET = "e2e-secret-" + "y" * 40
# A node starts in about a second; a first embedded start runs initdb too. Generous, for CI.
START_DEADLINE = 60.0
STOP_DEADLINE = 30.0
CLI_DEADLINE = 60.0


def node_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a node: nothing inherited from LMS_* but what the test says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMS_")}
    env.update({"LMS_DATA_DIR": str(data_dir), "LMS_PORT": "0", "LMS_LOG_FORMAT": "json"})
    env.update(overrides)
    return env


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
    log_file = log_path.open("wb")
    process = await trio.lowlevel.open_process(
        [sys.executable, *launcher, "-m", "lms.cli", "serve"],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log_file,
    )
    log_file.close()
    assert process.stdout is not None
    try:
        with trio.fail_after(START_DEADLINE):
            banner = await _read_banner(process.stdout)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    if banner is None:
        log = await trio.Path(log_path).read_text()
        raise AssertionError(f"node exited before serving:\n{log}")
    return NodeProcess(process, banner, log_path)


async def _read_banner(stdout: trio.abc.ReceiveStream) -> str | None:
    """The URL from the node's "listening on URL" line, or None if stdout closed first."""
    seen = b""
    while BANNER not in seen or b"\n" not in seen.split(BANNER, 1)[1]:
        chunk = await stdout.receive_some()
        if not chunk:
            return None
        seen += chunk
    return seen.split(BANNER, 1)[1].split(b"\n", 1)[0].decode().strip()


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
