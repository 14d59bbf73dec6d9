"""What a server's heap holds: its objects counted by type, and optionally where the bytes
were allocated (tracemalloc), dumped on a signal.

    python -m tests.bench.heap_probe OUT_DIR [--trace] -m MODULE [ARGS...]

runs MODULE as ``__main__`` (as ``python -m MODULE ARGS`` would); on SIGUSR2 it writes
OUT_DIR/<n>.types (n = 0, 1, ...): JSON, the objects the collector tracks counted by type
(containers and instances: what a Python leak is made of); then OUT_DIR/<n>.trim: its RSS (KiB)
before and after glibc's `malloc_trim(0)` (memory freed but kept by the C heap is no leak); and
with `--trace`, first, OUT_DIR/<n>.snapshot: tracemalloc's snapshot of every block still
allocated, with `FRAMES` frames of where. Each file is written whole, then renamed into place.
The soak (tests/bench/soak.py `--heap-probe`) compares the last dump with the first to name
what grew. Counting walks the heap (a fraction of a second per dump); tracing makes every
allocation several times dearer, which overloads a node under the soak's full load: for
finding a leak at a lighter load, not for figures.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import json
import os
import re
import runpy
import signal
import sys
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType

FRAMES = 12


def install(out_dir: Path, *, trace: bool) -> None:
    if trace:
        tracemalloc.start(FRAMES)
    numbers = itertools.count()

    def dump(_signum: int, _frame: FrameType | None) -> None:
        n = next(numbers)
        if trace:
            _write(out_dir / f"{n}.snapshot", tracemalloc.take_snapshot().dump)
        types = Counter(map(_kind, gc.get_objects()))
        _write(out_dir / f"{n}.types", lambda path: Path(path).write_text(json.dumps(types)))
        # What glibc holds free but keeps: RSS before and after handing it back.
        trimmed = [_rss_kib(), _trim(), _rss_kib()]
        _write(out_dir / f"{n}.trim", lambda path: Path(path).write_text(json.dumps(trimmed)))

    signal.signal(signal.SIGUSR2, dump)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _trim() -> int:
    """glibc's malloc_trim(0): free heap memory back to the system; 1 if any was."""
    return int(ctypes.CDLL("libc.so.6").malloc_trim(0))


def _kind(o: object) -> str:
    """An object's type; for a class or a compiled pattern, which one (a program that makes
    them as it runs grows by them)."""
    if isinstance(o, type):
        return f"class {o.__module__}.{o.__qualname__}"
    if isinstance(o, re.Pattern):
        return f"pattern {o.pattern!r:.80}"
    return f"{type(o).__module__}.{type(o).__qualname__}"


def _write(path: Path, write: Callable[[str], object]) -> None:
    partial = path.with_suffix(".partial")
    write(str(partial))
    os.replace(partial, path)


def main() -> None:
    out_dir, *rest = sys.argv[1:]
    trace = rest[:1] == ["--trace"]
    if trace:
        rest = rest[1:]
    if rest[:1] != ["-m"] or len(rest) < 2:
        raise SystemExit(__doc__)
    _flag, module, *args = rest
    install(Path(out_dir), trace=trace)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
