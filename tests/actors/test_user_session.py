"""UserSession through the LiveRouter on an in-memory Bus: device sync, notifications, jobs,
slow connections, retirement."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from actors.bus import Bus
from actors.connection import Connection, Peer
from actors.live_router import LiveRouter, RouterOptions
from actors.runtime import open_mailbox
from actors.user_session import Attach, SessionMessage, UserSession
from proto.events import JobChanged, ProgressChanged
from proto.live import Announced, user_channel

USER = 42
COURSE = 7
IDLE = 5.0


@pytest.fixture
async def bus(nursery: trio.Nursery) -> Bus:
    bus = Bus()
    await nursery.start(bus.run)
    return bus


@pytest.fixture
async def router(nursery: trio.Nursery, bus: Bus) -> LiveRouter:
    router = LiveRouter("a", bus, RouterOptions(session_idle=IDLE, room_idle=IDLE))
    await nursery.start(router.run)
    return router


async def attach(
    router: LiveRouter, n: int, device: str, course_id: int | None = None, capacity: int = 64
) -> Connection:
    conn = Connection(Peer(f"a/{n}", USER, "Ada", device, course_id), capacity)
    await router.attach(conn)
    return conn


async def frames(conn: Connection) -> list[dict[str, Any]]:
    return [json.loads(text) for text in await conn.next_frames()]


def progress(device: str | None, course_id: int = COURSE) -> ProgressChanged:
    return ProgressChanged(USER, course_id, 3, 95.0, 95.0, 600.0, 0.16, False, [], device)


async def test_progress_goes_to_the_users_other_devices_and_not_back(
    router: LiveRouter, autojump_clock: trio.abc.Clock
) -> None:
    laptop = await attach(router, 1, "laptop")
    phone = await attach(router, 2, "phone", COURSE)
    elsewhere = await attach(router, 3, "tablet", COURSE + 1)  # another course's player
    await router.publish(progress("laptop"))
    [pushed] = await frames(phone)
    assert (pushed["type"], pushed["position"], pushed["device_id"]) == ("progress", 95.0, "laptop")
    await trio.sleep(1)
    assert laptop.queued == 0
    assert elsewhere.queued == 0
    await router.publish(progress(None))  # from a device that did not say: to every device
    assert [f["type"] for f in await frames(laptop)] == ["progress"]


async def test_progress_published_as_a_device_attaches_reaches_that_device(
    nursery: trio.Nursery, bus: Bus
) -> None:
    address, inbox = open_mailbox[SessionMessage](16, "session")
    await nursery.start(UserSession(USER, inbox, address, bus=bus).run)
    address.tell_nowait(Attach(Connection(Peer("a/1", USER, "Ada", "laptop"))))
    await trio.testing.wait_all_tasks_blocked()
    phone = Connection(Peer("a/2", USER, "Ada", "phone"))
    # No checkpoint between the two: the session has been handed the Attach, not handled it.
    address.tell_nowait(Attach(phone))
    bus.publish(user_channel(USER), progress("laptop"))
    await trio.testing.wait_all_tasks_blocked()
    assert phone.queued == 1
    assert [f["type"] for f in await frames(phone)] == ["progress"]


async def test_course_events_reach_the_users_sockets_outside_that_courses_room(
    router: LiveRouter, autojump_clock: trio.abc.Clock
) -> None:
    in_room = await attach(router, 1, "laptop", COURSE)
    notifications = await attach(router, 2, "laptop")
    router.announce(Announced(COURSE, "n1", 9, "Teacher", "Exam on Friday", 0.0, [USER]))
    [notified] = await frames(notifications)
    assert notified["type"] == "notification"
    assert notified["announcement"]["text"] == "Exam on Friday"
    await router.publish(JobChanged(5, COURSE, 3, USER, "ready", 1.0, renditions=["720p"]))
    [job] = await frames(notifications)
    assert (job["type"], job["job"]["status"]) == ("job", "ready")
    await trio.sleep(1)
    assert in_room.queued == 0  # its room tells it (test_course_room.py)
    other = Announced(COURSE, "n2", 9, "Teacher", "not for you", 0.0, [USER + 1])
    router.announce(other)
    await trio.sleep(1)
    assert notifications.queued == 0


async def test_a_connection_that_stops_reading_is_cut_and_the_others_keep_up(
    router: LiveRouter, autojump_clock: trio.abc.Clock
) -> None:
    slow = await attach(router, 1, "laptop", capacity=2)
    fast = await attach(router, 2, "phone")
    for n in range(5):
        await router.publish(ProgressChanged(USER, COURSE, 3, n, n, 600.0, 0.0, False, [], "x"))
        assert [f["position"] for f in await frames(fast)] == [n]
    assert not slow.open
    assert slow.close_code == 1013


async def test_a_session_lives_while_connected_and_retires_when_idle(
    router: LiveRouter, bus: Bus, autojump_clock: trio.abc.Clock
) -> None:
    conn = await attach(router, 1, "laptop")
    await trio.sleep(IDLE * 3)
    assert router.statistics().sessions.live == 1
    assert bus.subscribed(user_channel(USER))
    await router.leave(conn)
    await trio.sleep(IDLE * 2)
    assert router.statistics().sessions.live == 0
    assert router.statistics().sessions.retired == 1
    assert not bus.subscribed(user_channel(USER))


async def test_a_user_past_max_sockets_per_user_is_refused_until_one_leaves(
    nursery: trio.Nursery, bus: Bus
) -> None:
    router = LiveRouter("a", bus, RouterOptions(max_sockets_per_user=2))
    await nursery.start(router.run)
    laptop, phone, tablet = (Connection(Peer(f"a/{n}", USER, "Ada", f"d{n}")) for n in range(3))
    assert await router.attach(laptop)
    assert await router.attach(phone)
    assert not await router.attach(tablet)
    other_user = Connection(Peer("a/9", USER + 1, "Bob"))
    assert await router.attach(other_user)
    assert router.statistics().connections == 3  # the refused one is not watched either
    await router.leave(phone)
    assert await router.attach(tablet)
