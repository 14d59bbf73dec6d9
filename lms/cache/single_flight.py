"""Single-flight: concurrent misses on one key run one computation and share its result.

Theory of operation
-------------------
The first caller for a key leads: it runs the work in its own task (so it inherits the
caller's deadline and cancellation; no task outlives a request). Callers arriving meanwhile
wait on the flight's event and get the same value, or the same exception. A leader that is
cancelled abandons its flight: the waiters then start again, and one of them leads.

A flight also records whether it went stale: `invalidate(tags)` marks every flight whose tags
it names and detaches it, so a caller arriving after the invalidation starts a fresh flight
instead of sharing a value computed from data read before the change. The work checks
`flight.stale` before storing what it computed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SingleFlightStatistics:
    """Attributes:
    led: flights run (each one computation).
    shared: callers answered by another caller's flight instead of running their own.
    in_flight: flights running now.
    """

    led: int
    shared: int
    in_flight: int


class Flight(Generic[T]):
    """One computation of one key, with those waiting for it."""

    __slots__ = ("_done", "_error", "_value", "abandoned", "stale", "tags")

    def __init__(self, tags: frozenset[str]) -> None:
        self.tags = tags
        self.stale = False
        # Until the work returns or raises an error of its own: a leader cancelled (or ended
        # by a group holding a cancellation) leaves the waiters to start again.
        self.abandoned = True
        self._done = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._flights: dict[str, Flight[T]] = {}
        self._led = 0
        self._shared = 0

    async def run(
        self, key: str, tags: Iterable[str], work: Callable[[Flight[T]], Awaitable[T]]
    ) -> T:
        """`await work(flight)` once for all concurrent callers of `key`; its value, or its
        exception raised in every caller."""
        while True:
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, Flight(frozenset(tags)), work)
            await flight._done.wait()
            if flight.abandoned:
                continue
            self._shared += 1
            if flight._error is not None:
                raise flight._error
            return flight._value  # type: ignore[return-value]

    def invalidate(self, tags: Iterable[str] | None = None) -> None:
        """Mark stale, and detach, every flight carrying any of `tags` (every flight: None)."""
        names = None if tags is None else set(tags)
        for key, flight in list(self._flights.items()):
            if names is None or not flight.tags.isdisjoint(names):
                flight.stale = True
                del self._flights[key]

    def statistics(self) -> SingleFlightStatistics:
        return SingleFlightStatistics(
            led=self._led, shared=self._shared, in_flight=len(self._flights)
        )

    async def _lead(
        self, key: str, flight: Flight[T], work: Callable[[Flight[T]], Awaitable[T]]
    ) -> T:
        self._flights[key] = flight
        self._led += 1
        try:
            flight._value = value = await work(flight)
        except Exception as error:
            flight._error = error
            flight.abandoned = False
            raise
        else:
            flight.abandoned = False
            return value
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight._done.set()
