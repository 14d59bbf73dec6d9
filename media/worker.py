"""`python -m media.worker`: one transcode job in a process of its own.

Reads one `TranscodeSpec` as JSON on stdin, writes length-prefixed `WorkerFrame`s on stdout
(`proto.media.encode_frame`, flushed one by one) and ends with `Done` (exit code 0) or
`Failed(reason)` (exit code 1), a verdict on the input. A volume with no room left is not one:
the worker then ends with no verdict, exit code `EX_TEMPFAIL` and a last stderr line naming the
fault (no path), so the pool counts a crash and the job is tried again later.

stdout carries frames and nothing else: the real stdout is kept for them and file descriptor 1
is pointed at stderr, so a stray print or a library writing to stdout cannot corrupt the stream.
Logs and tracebacks go to stderr.

SIGTERM keeps its default action: the process ends at once, mid-write if need be; the pool that
sends it removes the job's directory.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import traceback
from typing import BinaryIO

import msgspec

import proto
from media.errors import MediaError
from media.transcode import run_spec
from proto.media import Done, Failed, TranscodeSpec, WorkerFrame, encode_frame

# The errors of a volume (or a quota) with no room left: the machine's fault, not the input's.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def main() -> int:
    frames = _take_stdout()
    try:
        spec = proto.decode(sys.stdin.buffer.read(), TranscodeSpec)
    except msgspec.DecodeError as exc:
        return _end(frames, Failed(f"invalid job spec: {exc}"))

    try:
        manifest = run_spec(spec, functools.partial(_write, frames))
    except MediaError as exc:
        return _end(frames, Failed(exc.reason))
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            print("no space left on the media volume", file=sys.stderr)
            return os.EX_TEMPFAIL
        return _end(frames, Failed(f"internal error: {type(exc).__name__}: {exc}"))
    return _end(frames, Done(manifest))


def _take_stdout() -> BinaryIO:
    """A private handle on the real stdout, with fd 1 and `sys.stdout` pointed at stderr."""
    sys.stdout.flush()
    frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return frames


def _write(frames: BinaryIO, frame: WorkerFrame) -> None:
    frames.write(encode_frame(frame))
    frames.flush()


def _end(frames: BinaryIO, frame: Done | Failed) -> int:
    _write(frames, frame)
    return 0 if isinstance(frame, Done) else 1


if __name__ == "__main__":
    sys.exit(main())
