"""Single-flight: concurrent misses on one key compute once."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from lms.cache.single_flight import Flight, SingleFlight


class Work:
    """A computation that waits for `release`, counting its runs."""

    def __init__(self, value: str = "v") -> None:
        self.value = value
        self.runs = 0
        self.release = trio.Event()
        self.flights: list[Flight[str]] = []

    async def __call__(self, flight: Flight[str]) -> str:
        self.runs += 1
        self.flights.append(flight)
        await self.release.wait()
        return self.value


async def test_ten_concurrent_misses_compute_once_and_all_get_the_value() -> None:
    flights: SingleFlight[str] = SingleFlight()
    work = Work()
    answers: list[str] = []

    async def ask() -> None:
        answers.append(await flights.run("k", ["course:1"], work))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        work.release.set()
    assert work.runs == 1
    assert answers == ["v"] * 10
    stats = flights.statistics()
    assert (stats.led, stats.shared, stats.in_flight) == (1, 9, 0)


async def test_an_error_reaches_every_waiter_and_is_not_kept() -> None:
    flights: SingleFlight[str] = SingleFlight()
    gate = trio.Event()
    errors: list[BaseException] = []

    async def fail(flight: Flight[str]) -> str:
        await gate.wait()
        raise LookupError("no such course")

    async def ask() -> None:
        try:
            await flights.run("k", [], fail)
        except LookupError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        gate.set()
    assert len(errors) == 3
    work = Work("later")
    work.release.set()
    assert await flights.run("k", [], work) == "later"


async def test_a_cancelled_leader_hands_the_work_to_a_waiter() -> None:
    flights: SingleFlight[str] = SingleFlight()
    work = Work()
    answers: list[str] = []

    async def ask() -> None:
        answers.append(await flights.run("k", [], work))

    leader = trio.CancelScope()

    async def lead() -> None:
        with leader:
            await ask()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lead)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        leader.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert work.runs == 2  # the waiter took over
        work.release.set()
    assert answers == ["v"]


async def test_callers_after_an_invalidation_do_not_share_a_flight_that_read_older_data() -> None:
    flights: SingleFlight[str] = SingleFlight()
    before, after = Work("before"), Work("after")
    answers: dict[str, str] = {}

    async def ask(name: str, work: Work) -> None:
        answers[name] = await flights.run("k", ["course:1", "user:2"], work)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ask, "early", before)
        await trio.testing.wait_all_tasks_blocked()
        flights.invalidate(["course:3"])  # another tag: the flight goes on
        assert not before.flights[0].stale
        flights.invalidate(["user:2"])
        assert before.flights[0].stale
        nursery.start_soon(ask, "late", after)
        await trio.testing.wait_all_tasks_blocked()
        before.release.set()
        after.release.set()
    assert answers == {"early": "before", "late": "after"}
    assert flights.statistics().led == 2


@pytest.mark.parametrize("tags", [None, ["course:1"]])
async def test_invalidating_everything_or_a_tag_marks_running_flights_stale(
    tags: list[str] | None,
) -> None:
    flights: SingleFlight[str] = SingleFlight()
    work = Work()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flights.run, "k", ["course:1"], work)
        await trio.testing.wait_all_tasks_blocked()
        flights.invalidate(tags)
        assert work.flights[0].stale
        assert flights.statistics().in_flight == 0
        work.release.set()
