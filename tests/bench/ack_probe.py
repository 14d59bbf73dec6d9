"""How long a server takes to answer, seen from inside it: from the kernel's arrival of a
client's bytes to the server's write of its answer.

    python -m tests.bench.ack_probe OUT -m MODULE [ARGS...]

runs MODULE as ``__main__`` (as ``python -m MODULE ARGS`` would) with the probe installed; on
SIGUSR2 it writes the waits measured so far to OUT as JSON, ``[[arrived_at, seconds], ...]``
(wall clock, so the benchmark can keep the ones in its window), and tells its parent with
SIGUSR1.

Why: the live benchmark's clients run on the one core the server does not, beside PostgreSQL
and each other, and a batch of acks wakes them all at once: they queue for that core, and
what they measure (heartbeat sent -> ack read) includes their own wait. In production the
clients are other machines. This probe leaves the clients out: a socket asks the kernel for
each read's arrival time (SO_TIMESTAMPNS), the first bytes read after the last write start a
wait, and the next write on that socket ends it. On a learner's socket that is the heartbeat
and its ack (the server's queueing, its processing and, on the node, the group commit); an
instructor's pong and the next view it is sent also count, a few dozen in a run.

It patches `trio.SocketStream`, which both servers' Hypercorn reads and writes through: one
`recvmsg` instead of a `recv` per read, and a clock read per write. Both servers pay that
(~15 us per heartbeat here), which lowers their CPU ratio a little: the benchmark runs it
only when asked (`--server-acks`).
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from types import FrameType

import trio
from trio._highlevel_socket import DEFAULT_RECEIVE_SIZE, _translate_socket_errors_to_stream_errors

# Linux's SO_TIMESTAMPNS (and the control message's type): Python's socket module has no name
# for it. The control message holds a struct timespec of two longs.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("ll")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)


def install(out: Path) -> None:
    waits: list[tuple[float, float]] = []
    send_all = trio.SocketStream.send_all

    async def receive_some(self: trio.SocketStream, max_bytes: int | None = None) -> bytes:
        if not hasattr(self, "_probe_since"):
            self.socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self._probe_since = None  # type: ignore[attr-defined]
        with _translate_socket_errors_to_stream_errors():
            data, ancillary, _flags, _address = await self.socket.recvmsg(
                max_bytes or DEFAULT_RECEIVE_SIZE, _ANCILLARY
            )
        if data and self._probe_since is None:  # type: ignore[attr-defined]
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                    seconds, nanoseconds = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
                    self._probe_since = seconds + nanoseconds / 1e9  # type: ignore[attr-defined]
        return data

    async def probed_send_all(
        self: trio.SocketStream, data: bytes | bytearray | memoryview
    ) -> None:
        # Read before the write: a write yields to the scheduler once its bytes are out, so
        # the time after it would add the rest of a scheduling pass.
        since = getattr(self, "_probe_since", None)
        if since is not None:
            waits.append((since, time.time() - since))
            self._probe_since = None  # type: ignore[attr-defined]
        await send_all(self, data)

    def dump(_signum: int, _frame: FrameType | None) -> None:
        partial = out.with_suffix(".partial")
        partial.write_text(json.dumps(waits))
        os.replace(partial, out)
        os.kill(os.getppid(), signal.SIGUSR1)  # "written", to the benchmark that asked

    trio.SocketStream.receive_some = receive_some  # type: ignore[method-assign]
    trio.SocketStream.send_all = probed_send_all  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR2, dump)


def main() -> None:
    out, flag, module, *args = sys.argv[1:]
    if flag != "-m":
        raise SystemExit(__doc__)
    install(Path(out))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
