"""Ask deadlines: one task per trio run times out every ask still waiting for its answer.

An ask waits at most its timeout. A cancel scope with a deadline around each wait would do
that, but entering and leaving one costs more than the rest of the ask together (trio
registers and unregisters every such deadline), and an ask is the node's hottest path: every
progress heartbeat is one. So a waiting ask's `Answer` goes into a heap by deadline instead,
and one system task sleeps until the earliest, then settles every answer that is due with
`AskTimeout`, which wakes its asker as an answer would (an answer that came first wins; the
timeout is then ignored). The task sleeps until the earliest ask still waiting; answered ones
are dropped from the heap when they reach its top (entries are small: an answer's value is not
kept once delivered).
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from .reply import Answer

_RUN_DEADLINES: trio.lowlevel.RunVar[_Deadlines] = trio.lowlevel.RunVar("actors_ask_deadlines")


def expire_at(deadline: float, answer: Answer[Any]) -> None:
    """Time `answer` out at `deadline` (trio's clock) unless it is settled by then."""
    try:
        deadlines = _RUN_DEADLINES.get()
    except LookupError:
        deadlines = _Deadlines()
        _RUN_DEADLINES.set(deadlines)
        trio.lowlevel.spawn_system_task(deadlines.run, name="actors.ask_deadlines")
    deadlines.add(deadline, answer)


class _Deadlines:
    __slots__ = ("_heap", "_order", "_sleep")

    def __init__(self) -> None:
        # (deadline, order, answer): the order breaks ties so answers are never compared.
        self._heap: list[tuple[float, int, Answer[Any]]] = []
        self._order = itertools.count()
        self._sleep: trio.CancelScope | None = None  # the task's sleep, until its next deadline

    def add(self, deadline: float, answer: Answer[Any]) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), answer))
        # Moving the sleep's deadline is cheaper than waking the task, and it is needed only
        # for a deadline earlier than every waiting ask's (rare: timeouts are alike).
        if self._sleep is not None and deadline < self._sleep.deadline:
            self._sleep.deadline = deadline

    async def run(self) -> None:
        heap = self._heap
        while True:
            # Answered asks need no timeout: sleeping until theirs would wake this task once
            # per ask. So it sleeps until the earliest ask still waiting.
            while heap and heap[0][2].settled:
                heapq.heappop(heap)
            self._sleep = trio.CancelScope(deadline=heap[0][0] if heap else math.inf)
            with self._sleep:
                await trio.sleep_forever()
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                heapq.heappop(heap)[2].expire()
