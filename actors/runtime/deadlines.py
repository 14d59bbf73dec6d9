"""Ask deadlines: one task per trio run times out every ask still waiting for its answer.

An ask waits at most its timeout. A cancel scope with a deadline around each wait would do
that, but entering and leaving one costs more than the rest of the ask together (trio
registers and unregisters every such deadline), and an ask is the node's hottest path: every
progress heartbeat is one. So a waiting ask's `Answer` goes into a heap by deadline instead,
and one system task sleeps until the earliest, then settles every answer that is due with
`AskTimeout`, which wakes its asker as an answer would (an answer that came first wins; the
timeout is then ignored). Asks that were answered stay in the heap until their deadline:
entries are small (the answer's value is not kept once delivered) and go in time order.
"""

from __future__ import annotations

import heapq
import itertools
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
    __slots__ = ("_heap", "_idle", "_order", "_sleep")

    def __init__(self) -> None:
        # (deadline, order, answer): the order breaks ties so answers are never compared.
        self._heap: list[tuple[float, int, Answer[Any]]] = []
        self._order = itertools.count()
        self._sleep: trio.CancelScope | None = None  # sleeping until the earliest deadline
        self._idle: trio.lowlevel.Task | None = None  # parked: the heap is empty

    def add(self, deadline: float, answer: Answer[Any]) -> None:
        heapq.heappush(self._heap, (deadline, next(self._order), answer))
        if self._idle is not None:
            idle, self._idle = self._idle, None
            trio.lowlevel.reschedule(idle)
        elif self._sleep is not None and deadline < self._sleep.deadline:
            self._sleep.deadline = deadline

    async def run(self) -> None:
        heap = self._heap
        while True:
            if not heap:
                self._idle = trio.lowlevel.current_task()

                def abort(_: object) -> trio.lowlevel.Abort:
                    self._idle = None
                    return trio.lowlevel.Abort.SUCCEEDED

                await trio.lowlevel.wait_task_rescheduled(abort)
                continue
            self._sleep = trio.CancelScope(deadline=heap[0][0])
            with self._sleep:
                await trio.sleep_forever()
            self._sleep = None
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                heapq.heappop(heap)[2].expire()
