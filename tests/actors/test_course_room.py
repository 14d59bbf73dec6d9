"""CourseRoom on an in-memory Bus, in trio: snapshots, numbered and coalesced events sent once a
tick, recovery, slow clients, and the replica of another node's presence, end to end through
the mailbox, the clock and the connections. The rules alone, without trio, are in
test_course_room_state.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.lowlevel

from actors.bus import Bus
from actors.connection import Connection, Peer
from actors.course_room import CourseRoom, Join, Leave, RoomMessage, RoomOptions, Watch
from actors.runtime import Address, open_mailbox
from proto.events import JobChanged, ProgressChanged
from proto.frames import Member, Position
from proto.live import Announced, Joined, course_channel

COURSE = 7
TICK = 0.1


class Room:
    def __init__(self, address: Address[RoomMessage], room: CourseRoom, bus: Bus) -> None:
        self.address = address
        self.room = room
        self.bus = bus

    async def join(self, conn: Connection, since: Position | None = None) -> None:
        await self.address.tell(Join(conn, since))

    def hear(self, message: Any) -> None:
        """What the Bus delivers from a producer or another node."""
        self.bus.deliver_local(course_channel(COURSE), message)


@pytest.fixture
async def room(nursery: trio.Nursery) -> Room:
    return await start_room(nursery, RoomOptions(tick=TICK, history=8, learner_history=4))


async def start_room(nursery: trio.Nursery, options: RoomOptions) -> Room:
    bus = Bus()
    address, inbox = open_mailbox[RoomMessage](64, "room")
    room = CourseRoom(COURSE, inbox, address, bus=bus, node="a", options=options)
    await nursery.start(room.run)
    return Room(address, room, bus)


def connection(n: int, user_id: int, role: str = "learner", capacity: int = 64) -> Connection:
    peer = Peer(f"a/{n}", user_id, f"user {user_id}", f"device {n}", COURSE, role)  # type: ignore[arg-type]
    return Connection(peer, capacity)


async def messages(conn: Connection) -> list[list[dict[str, Any]]]:
    """Every message queued on `conn` (each a list of frames, unpacking batches)."""
    out = []
    for text in await conn.next_frames():
        frame = json.loads(text)
        out.append(frame["frames"] if frame["type"] == "batch" else [frame])
    return out


def progress(user_id: int, position: float, content_id: int = 1) -> ProgressChanged:
    return ProgressChanged(
        user_id, COURSE, content_id, position, position, 100.0, position / 100, False, []
    )


async def test_an_instructor_gets_a_snapshot_then_one_coalesced_batch_per_tick(
    room: Room, autojump_clock: trio.abc.Clock
) -> None:
    teacher = connection(1, 100, "instructor")
    await room.join(teacher)
    [[snapshot]] = await messages(teacher)
    assert snapshot["type"] == "snapshot"
    assert [m["user_id"] for m in snapshot["online"]] == [100]

    learner = connection(2, 200)
    await room.join(learner)
    await room.address.tell(Watch(learner, 1))
    for position in (10.0, 20.0, 30.0):
        room.hear(progress(200, position))
    room.hear(JobChanged(9, COURSE, 1, 100, "transcoding", 0.5))
    await trio.sleep(TICK / 2)
    [[joined]] = await messages(teacher)  # a join is sent at once, so the snapshot is exact
    assert (joined["type"], joined["event"]) == ("presence", "join")
    await trio.sleep(TICK)
    [tick] = await messages(teacher)  # one message for everything else
    assert [f["type"] for f in tick] == ["presence", "progress", "job"]
    assert tick[1]["position"] == 30.0  # only the latest progress of that content
    start = snapshot["seq"] + 1
    assert [f["seq"] for f in [joined, *tick]] == list(range(start, start + 4))
    assert {f["epoch"] for f in tick} == {snapshot["epoch"]}


async def test_learners_hear_announcements_at_once_and_nobody_elses_progress(
    room: Room, autojump_clock: trio.abc.Clock
) -> None:
    learner = connection(1, 200)
    await room.join(learner)
    [[snapshot]] = await messages(learner)
    assert snapshot["online"] == []
    assert snapshot["learners"] == []
    room.hear(progress(300, 50.0))
    room.hear(Announced(COURSE, "x1", 100, "Teacher", "Quiz at 10", 0.0, [200]))
    with trio.fail_after(TICK / 10):  # not held back for the tick
        [[announcement]] = await messages(learner)
    assert (announcement["type"], announcement["text"]) == ("announcement", "Quiz at 10")
    await trio.sleep(2 * TICK)
    assert learner.queued == 0


async def test_a_client_resumes_from_its_position_or_is_told_to_resync(
    room: Room, autojump_clock: trio.abc.Clock
) -> None:
    first = connection(1, 200)
    await room.join(first)
    [[snapshot]] = await messages(first)
    await room.address.tell(Leave(first))
    for n in range(3):
        room.hear(Announced(COURSE, f"a{n}", 100, "Teacher", f"note {n}", 0.0, []))
    await trio.sleep(TICK)

    again = connection(2, 200)
    await room.join(again, Position(snapshot["epoch"], snapshot["seq"]))
    [missed] = await messages(again)
    assert [f["text"] for f in missed] == ["note 0", "note 1", "note 2"]

    for n in range(3, 8):  # the learners' history keeps 4
        room.hear(Announced(COURSE, f"a{n}", 100, "Teacher", f"note {n}", 0.0, []))
    await trio.sleep(TICK)
    await messages(again)
    late = connection(3, 200)
    await room.join(late, Position(snapshot["epoch"], snapshot["seq"]))
    [[resync], [fresh]] = await messages(late)
    assert (resync["type"], resync["reason"], fresh["type"]) == ("resync", "history", "snapshot")
    other = connection(4, 200)
    await room.join(other, Position("another-node", 1))
    [[resync], [fresh]] = await messages(other)
    assert (resync["reason"], fresh["seq"]) == ("epoch", resync["seq"])


async def test_a_slow_client_is_cut_with_1013_and_the_room_keeps_serving_the_rest(
    room: Room, autojump_clock: trio.abc.Clock
) -> None:
    slow = connection(1, 100, "instructor", capacity=4)
    fast = connection(2, 101, "instructor")
    await room.join(slow)
    await room.join(fast)
    await messages(fast)
    heard = []
    for n in range(10):
        room.hear(Announced(COURSE, f"a{n}", 100, "Teacher", f"note {n}", 0.0, []))
        await trio.lowlevel.checkpoint()
        frames = [f for batch in await messages(fast) for f in batch]
        assert f"note {n}" in [f.get("text") for f in frames]  # at once, however slow the other
        heard += frames
    assert not slow.open
    assert slow.close_code == 1013
    assert slow.queued == 4  # what it had not read; nothing was added once it was cut
    await trio.sleep(TICK * 2)
    if fast.queued:
        heard += [f for batch in await messages(fast) for f in batch]
    leaves = [f["member"]["conn"] for f in heard if f.get("event") == "leave"]
    assert leaves == ["a/1"]
    assert room.room.statistics().cut == 1


async def test_another_nodes_members_are_replicated_and_age_out_when_it_goes_silent(
    nursery: trio.Nursery, autojump_clock: trio.abc.Clock
) -> None:
    room = await start_room(nursery, RoomOptions(tick=TICK, presence_refresh=10.0))
    teacher = connection(1, 100, "instructor")
    await room.join(teacher)
    await messages(teacher)
    remote = Member("b/1", 300, "Remote learner", "learner", 1)
    room.hear(Joined(COURSE, "b", remote))
    await trio.sleep(TICK * 2)
    [[joined]] = await messages(teacher)
    assert (joined["event"], joined["member"]["conn"]) == ("join", "b/1")
    again = connection(2, 101, "instructor")
    await room.join(again)
    [[snapshot]] = await messages(again)
    assert {m["conn"] for m in snapshot["online"]} == {"a/1", "a/2", "b/1"}
    await trio.sleep(10.0 * 3 + 10.0 + TICK * 2)  # node b says nothing for three refreshes
    frames = [f for batch in await messages(teacher) for f in batch]
    assert ("leave", "b/1") in [(f["event"], f["member"]["conn"]) for f in frames]
