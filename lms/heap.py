"""The node's garbage collector settings, made once it has started.

A node's heap is large and long-lived (modules, the app, pools, and then thousands of
connections with their tasks, actors and protocol state), while each frame and request makes
short-lived garbage. CPython's full collection walks every tracked object: with thousands of
sockets open it stops the node for a second or more, and those stalls become the acknowledgement
latency's p99. So, once serving:

- what start-up built is moved out of the collector's sight (`gc.freeze`): it lives as long as
  the process and would only be walked again and again;
- young passes keep CPython's threshold of 700 net new tracked objects. A higher one (such as
  2,000, CPython 3.13's default) makes them rarer, not cheaper: what counts is allocations minus
  frees, and frees of objects older than the last pass offset nothing, so the count climbs with
  the node's rhythm (heartbeats waiting for their batch, events for their room's tick) and a
  pass runs whenever its peaks line up. Each pass walks every object allocated since the last
  one that is still alive (under load, mostly the state each socket parks until its next
  frame), so rarer passes are longer ones, for about the same collector time in all;
- the middle generation is collected every 3 young passes instead of every 10. Every frame a
  socket reads or writes leaves a few dozen objects parked until its next one (the read
  waiting in Hypercorn, the receive in Quart, the writer's wait), and they survive the young
  passes; a middle pass walks all that piled up since the last, so more frequent middle passes
  are shorter ones, for slightly less collector time. Rarer ones do not skip that state (it
  lives until the socket's next frame, seconds later): they only make each pass longer;
- full collections wait for 3,000 middle passes (CPython waits for 10), so they stay rare: one
  per ~9,000 young passes. Short-lived garbage is freed by reference
  counting or by the younger passes; what reaches the old generation is mostly state that lives
  as long as its connection.

The measurements behind each choice are in docs/perf-log.md (its collector entries).
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
