"""The node's garbage collector settings, made once it has started.

A node's heap is large and long-lived (modules, the app, pools, and then thousands of
connections with their tasks, actors and protocol state), while each frame and request makes
short-lived garbage. CPython's full collection walks every tracked object: with 5,000 sockets
open it stopped the node for 1-2 s, tens of times in a few minutes of tests/bench/live.py, and
those stalls were the acknowledgement latency's p99. So, once serving:

- what start-up built is moved out of the collector's sight (`gc.freeze`): it lives as long as
  the process and would only be walked again and again;
- a young pass waits for 2,000 more tracked objects instead of 700 (CPython 3.13's own new
  default). What counts is allocations minus frees, and a node's steady state is a rhythm:
  heartbeats wait ~25 ms for their batch, events up to 0.25 s for their room's tick, every
  frame's state is replaced by the next frame's. The peaks of that rhythm passed 700, so young
  passes ran several times a second, each walking every socket's fresh state, almost all of
  which reference counting frees moments later. With 2,000, tests/bench/live.py's node ran no
  collection at all in a minute at 500 heartbeats/s (three young passes a second before) and
  spent ~15 % less CPU per heartbeat. (A higher threshold used to make things worse: every
  ask's timeout entry outlived the ask by 10 s, a net growth that reached any threshold, and
  the rarer passes then walked seconds of sockets' state; see actors/runtime/deadlines.py);
- the middle generation is collected every 3 young passes instead of every 10. Every frame a
  socket reads or writes leaves a few dozen objects parked until its next one (the read
  waiting in Hypercorn, the receive in Quart, the writer's wait), and they survive the young
  passes; a middle pass walks all that piled up since the last. At 1,000 heartbeats/s over
  5,000 sockets, with young passes every 700, that was 41 ms on average and up to 70 ms every
  ~0.6 s; a third as much (16 ms, up to 37 ms) every 3, for slightly less collector time;
- full collections wait for 3,000 middle passes (CPython waits for 10, and this node waited
  for 1,000 while middle passes came every 10 young ones): as rare in time as before. Short-
  lived garbage is freed by reference counting or by the younger passes; what reaches the old
  generation is mostly state that lives as long as its connection.
"""

from __future__ import annotations

import gc

# Net new tracked objects between young passes (CPython's default is 700; 2,000 from 3.13).
YOUNG_THRESHOLD = 2000
# Young passes between middle-generation passes (CPython's default is 10).
MIDDLE_THRESHOLD = 3
# Middle-generation passes between full collections (CPython's default is 10).
OLD_THRESHOLD = 3000


def settle_after_startup() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
