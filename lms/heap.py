"""The node's garbage collector settings, made once it has started.

A node's heap is large and long-lived (modules, the app, pools, and then thousands of
connections with their tasks, actors and protocol state), while each frame and request makes
short-lived garbage. CPython's full collection walks every tracked object: with 5,000 sockets
open it stopped the node for 1-2 s, tens of times in a few minutes of tests/bench/live.py, and
those stalls were the acknowledgement latency's p99. So, once serving:

- what start-up built is moved out of the collector's sight (`gc.freeze`): it lives as long as
  the process and would only be walked again and again;
- full collections wait for a hundred times more middle-generation passes than by default.
  Short-lived garbage is freed by reference counting or by the young collections, which still
  run as usual; what reaches the old generation is mostly state that lives as long as its
  connection.
"""

from __future__ import annotations

import gc

# Middle-generation passes between full collections (CPython's default is 10).
OLD_THRESHOLD = 1000


def settle_after_startup() -> None:
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, OLD_THRESHOLD)
