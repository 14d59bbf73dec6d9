"""How fast the server's core is running right now, for tests/bench/live.py.

    python -m tests.bench.core_speed   (stopped with SIGTERM; prints the median, in us)

The machines are shared VMs, whose speed drifts within minutes and differs from day to day. So
the measured span also runs this probe on the servers' core: a fixed piece of pure Python (dict
updates and string formatting) every 100 ms, ~1 % of the core, timed in thread CPU time. It is
a contention indicator, not a correction: the servers' CPU per frame moves far less than the
probe (which has ranged about threefold on the project's machine: docs/perf-log.md), so compare
runs whose probes agree.
"""

from __future__ import annotations

import signal
import statistics
import time
from types import FrameType

PERIOD = 0.1
ROUNDS = 3000


def work() -> str:
    counts: dict[int, int] = {}
    text = ""
    for i in range(ROUNDS):
        counts[i % 97] = counts.get(i % 97, 0) + i
        text = f"{i}:{counts[i % 97]}"
    return text


def main() -> None:
    stopped = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    samples: list[float] = []
    while not stopped:
        started = time.thread_time()
        work()
        samples.append(time.thread_time() - started)
        time.sleep(PERIOD)
    print(f"{statistics.median(samples) * 1e6:.1f}", flush=True)


if __name__ == "__main__":
    main()
