"""The node's garbage collector settings, made once it has started.

A node's heap is large and long-lived (modules, the app, pools, and then thousands of
connections with their tasks, actors and protocol state), while each frame and request makes
short-lived garbage. CPython's full collection walks every tracked object: with 5,000 sockets
open it stopped the node for 1-2 s, tens of times in a few minutes of tests/bench/live.py, and
those stalls were the acknowledgement latency's p99. So, once serving:

- what start-up built is moved out of the collector's sight (`gc.freeze`): it lives as long as
  the process and would only be walked again and again;
- young passes keep CPython's threshold of 700 net new tracked objects. A higher one (2,000,
  CPython 3.13's default, tried 2026-11-26) makes them rarer, not cheaper: what counts is
  allocations minus frees, and frees of objects older than the last pass offset nothing, so
  the count climbs with the node's rhythm (heartbeats waiting ~25 ms for their batch, events
  up to 0.25 s for their room's tick) and a pass runs whenever its peaks line up. Each pass
  walks every object allocated since the last one that is still alive - at 1,000 heartbeats/s
  mostly the state each of 5,000 sockets parks until its next frame - so rarer passes are
  longer ones. Measured by `gc.callbacks` in tests/bench/live.py at that load (2026-12-02):
  with 2,000, 1.3 young passes a second of 17.7 ms on average (up to 172 ms) and middle ones
  of 94 ms (up to 274 ms), ack p99 498-778 ms in 3 rounds; with 700, 12 young passes a second
  of 2.0 ms and middle ones of 9.5 ms, ack p99 median 89 ms in 7 rounds, for about the same
  collector time in all (the README's table);
- the middle generation is collected every 3 young passes instead of every 10. Every frame a
  socket reads or writes leaves a few dozen objects parked until its next one (the read
  waiting in Hypercorn, the receive in Quart, the writer's wait), and they survive the young
  passes; a middle pass walks all that piled up since the last. At 1,000 heartbeats/s over
  5,000 sockets, with young passes every 700, that was 41 ms on average and up to 70 ms every
  ~0.6 s; a third as much (16 ms, up to 37 ms) every 3, for slightly less collector time.
  Rarer middle passes do not skip that state, it lives 5 s: every 50 young passes (~4 s),
  tried 2026-12-02, they took 95 ms each and more collector time in all;
- full collections wait for 3,000 middle passes (CPython waits for 10, and this node waited
  for 1,000 while middle passes came every 10 young ones): as rare in time as before. Short-
  lived garbage is freed by reference counting or by the younger passes; what reaches the old
  generation is mostly state that lives as long as its connection.
"""

from __future__ import annotations

import gc

# Net new tracked objects between young passes (CPython's default; 2,000 from 3.13).
YOUNG_THRESHOLD = 700
# Young passes between middle-generation passes (CPython's default is 10).
MIDDLE_THRESHOLD = 3
# Middle-generation passes between full collections (CPython's default is 10).
OLD_THRESHOLD = 3000


def settle_after_startup() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
