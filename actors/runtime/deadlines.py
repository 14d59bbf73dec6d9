"""Ask deadlines: one task per trio run times out every ask still waiting for its answer.

An ask waits at most its timeout. A cancel scope with a deadline around each wait would do
that, but entering and leaving one costs more than the rest of the ask together (trio
registers and unregisters every such deadline), and an ask is the node's hottest path: every
progress heartbeat is one. So a waiting ask's `Answer` is registered here instead, and one
system task sleeps until the earliest deadline, then settles every answer that is due with
`AskTimeout`, which wakes its asker as an answer would (an answer that came first wins; the
timeout is then ignored).

An answer leaves the moment it is settled (`Deadlines.forget`), so only asks still waiting are
held. (They used to stay in a heap until their deadline: a heartbeat's answer and its entry
outlived it by its whole 10 s timeout, 20,000 objects at 1,000 heartbeats/s. Freed in bulk
long after, they no longer offset their allocation in the collector's count, so they alone
started most of the node's young collections, each walking every socket's fresh state.)

Waiting answers are kept per timeout, in the order they were registered: asks with the same
timeout come due in the order they were made, so each queue's first is its next due, and adding
and forgetting are a dict's insert and delete. The one exception is an ask that waited for room
in a mailbox, registered after asks made later than it: its earlier deadline goes to a small
heap of stragglers instead.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from .reply import Answer

_RUN_DEADLINES: trio.lowlevel.RunVar[Deadlines] = trio.lowlevel.RunVar("actors_ask_deadlines")


def expire_at(deadline: float, timeout: float, answer: Answer[Any]) -> Deadlines:
    """Time `answer` (of an ask with `timeout`) out at `deadline` (trio's clock) unless it is
    settled first; return the registry to `forget` it in once it is."""
    try:
        deadlines = _RUN_DEADLINES.get()
    except LookupError:
        deadlines = Deadlines()
        _RUN_DEADLINES.set(deadlines)
        trio.lowlevel.spawn_system_task(deadlines.run, name="actors.ask_deadlines")
    deadlines.add(deadline, timeout, answer)
    return deadlines


class Deadlines:
    """The run's asks waiting for an answer, by deadline; `run` is the task that times them
    out."""

    __slots__ = ("_order", "_queues", "_sleep", "_stragglers")

    def __init__(self) -> None:
        # timeout -> {answer: deadline}, in the order registered, so deadlines ascend.
        self._queues: dict[float, dict[Answer[Any], float]] = {}
        # (deadline, order, answer) of answers registered out of order; settled ones are
        # dropped when they reach the top. The order breaks ties so answers are never compared.
        self._stragglers: list[tuple[float, int, Answer[Any]]] = []
        self._order = itertools.count()
        self._sleep: trio.CancelScope | None = None  # the task's sleep, until its next deadline

    def add(self, deadline: float, timeout: float, answer: Answer[Any]) -> None:
        queue = self._queues.get(timeout)
        if queue is None:
            self._queues[timeout] = {answer: deadline}
        elif deadline >= next(reversed(queue.values())):
            queue[answer] = deadline
        else:
            heapq.heappush(self._stragglers, (deadline, next(self._order), answer))
        # Moving the sleep's deadline is cheaper than waking the task, and it is needed only
        # for a deadline earlier than every waiting ask's.
        if self._sleep is not None and deadline < self._sleep.deadline:
            self._sleep.deadline = deadline

    def forget(self, timeout: float, answer: Answer[Any]) -> None:
        """`answer` is settled: it needs no timeout. (A straggler is dropped when it comes up.)
        The task is not woken: if `answer` was the earliest, it wakes at that deadline, finds
        nothing due and sleeps until the next."""
        queue = self._queues.get(timeout)
        if queue is not None and queue.pop(answer, None) is not None and not queue:
            del self._queues[timeout]  # timeouts may be computed: keep no empty queue

    async def run(self) -> None:
        while True:
            self._sleep = trio.CancelScope(deadline=self._earliest())
            with self._sleep:
                await trio.sleep_forever()
            now = trio.current_time()
            for timeout, queue in list(self._queues.items()):
                while queue:
                    answer, deadline = next(iter(queue.items()))
                    if deadline > now:
                        break
                    del queue[answer]
                    answer.expire()
                if not queue:
                    del self._queues[timeout]
            while self._stragglers and self._stragglers[0][0] <= now:
                heapq.heappop(self._stragglers)[2].expire()

    def _earliest(self) -> float:
        stragglers = self._stragglers
        while stragglers and stragglers[0][2].settled:
            heapq.heappop(stragglers)
        firsts = [next(iter(queue.values())) for queue in self._queues.values()]
        if stragglers:
            firsts.append(stragglers[0][0])
        return min(firsts, default=math.inf)
