"""One run of the transcoder worker process (`python -m media.worker`), seen from trio.

The process gets its `TranscodeSpec` as JSON on stdin and reports length-prefixed frames on
stdout (`proto.media`); we hand each frame to a callback as it arrives and return how the run
ended. Cancelling the caller stops the process: SIGTERM, then SIGKILL once `grace` seconds have
passed, and the call returns only after the process has exited, so no worker outlives its job.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import msgspec
import trio

from proto.media import Done, Failed, FrameReader, TranscodeSpec, WorkerFrame

WORKER_COMMAND = (sys.executable, "-m", "media.worker")
# Enough of the worker's stderr to explain a crash (the tail of a traceback).
STDERR_TAIL = 2048


@dataclass(frozen=True)
class Crashed:
    """The worker ended without a `Done` or `Failed` frame: it crashed, was killed, or wrote
    garbage. Another attempt may succeed."""

    reason: str


Outcome = Done | Failed | Crashed
FrameHandler = Callable[[WorkerFrame], Awaitable[None]]


async def run_worker(
    spec: TranscodeSpec,
    on_frame: FrameHandler,
    *,
    command: Sequence[str] = WORKER_COMMAND,
    grace: float = 5.0,
    on_started: Callable[[trio.Process], None] | None = None,
) -> Outcome:
    """Run the worker on `spec`; `on_started(process)` once it runs."""
    terminal: Done | Failed | None = None
    corrupt: str | None = None
    stderr = bytearray()

    async def stop_gently(process: trio.Process) -> None:
        process.terminate()
        await trio.sleep(grace)
        process.kill()

    async def read_frames(stream: trio.abc.ReceiveStream, stop: trio.CancelScope) -> None:
        nonlocal terminal, corrupt
        reader = FrameReader()
        async for chunk in stream:
            try:
                frames = reader.feed(chunk)
            except ValueError as exc:
                corrupt = f"the transcoder wrote a corrupt frame: {exc}"
                stop.cancel()
                return
            for frame in frames:
                if isinstance(frame, Done | Failed):
                    terminal = frame
                await on_frame(frame)

    async def keep_stderr_tail(stream: trio.abc.ReceiveStream) -> None:
        async for chunk in stream:
            stderr.extend(chunk)
            del stderr[:-STDERR_TAIL]

    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                list(command),
                stdin=msgspec.json.encode(spec),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                check=False,
                deliver_cancel=stop_gently,
            )
        )
        if on_started is not None:
            on_started(process)
        assert process.stdout is not None  # noqa: S101 - narrows the type: stdout is piped
        assert process.stderr is not None  # noqa: S101 - narrows the type: stderr is piped
        # A corrupt stream stops the process; cancelling run_process does that gracefully.
        nursery.start_soon(read_frames, process.stdout, nursery.cancel_scope)
        nursery.start_soon(keep_stderr_tail, process.stderr)
    if corrupt is not None:
        return Crashed(corrupt)
    # A worker that reported Done but then died may have left its files unfinished.
    if isinstance(terminal, Failed) or (isinstance(terminal, Done) and process.returncode == 0):
        return terminal
    return Crashed(_crash_reason(process.returncode, bytes(stderr)))


def _crash_reason(returncode: int | None, stderr: bytes) -> str:
    if returncode is not None and returncode < 0:
        how = f"was killed by {signal.Signals(-returncode).name}"
    else:
        how = f"exited with code {returncode}"
    lines = stderr.decode(errors="replace").strip().splitlines()
    detail = f": {lines[-1]}" if lines else ""
    return f"the transcoder {how} before finishing{detail}"
